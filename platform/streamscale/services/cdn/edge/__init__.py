"""CDN edges: pull-through caches in front of the origin (or a shield edge) on the lean
h11 listener, with request coalescing (one upstream fetch per object per edge, however
many viewers ask at once, blocking reloads and preload-hinted parts included) and access
records for the viewer counts.

    _cache.py     freshness from Cache-Control, LRU store within a byte budget, heads
    _upstream.py  the keep-alive client to the upstream; failures as clear 502/504 text
    _routes.py    hit / coalesced miss / records / health / fault drills; the Edge handle

`run` starts every edge in `config.cdn.edges` (shields before the edges behind them) and
sends their access records over the bus (`RECORDS_QUEUE`).
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from ....config import Config, EdgeConfig
from ....runtime import ServiceInfo, current_resources, shutdown_requested
from ...lean_http import HTTPServer, Limits
from ..records import RECORDS_QUEUE, UsageBatch, UsageRecorder
from ._cache import EdgeStats
from ._metrics import edge_metrics
from ._routes import Edge, EdgeRoutes, Fault
from ._upstream import EDGE_HEADER, Upstream

log = logging.getLogger(__name__)

__all__ = ["EDGE_HEADER", "Edge", "EdgeStats", "Fault", "Limits", "run", "serve_edge"]

_MIB = 1024 * 1024


async def serve_edge(
    edge: EdgeConfig,
    *,
    upstream_url: str,
    recorder: UsageRecorder | None = None,
    limits: Limits | None = None,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[Edge] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve one edge until `shutdown` (default: the runtime's), then drain: parked
    viewers get their answers (or 503 at the grace deadline), then fetches are cancelled.

    Reports the `Edge` handle (its `.url` is the bound base URL)."""
    shutdown = shutdown if shutdown is not None else shutdown_requested()
    async with Upstream(upstream_url, edge.name) as upstream, \
            trio.open_nursery() as fetchers:
        routes = EdgeRoutes(edge.name, upstream, edge.cache_mb * _MIB, recorder, fetchers)
        server = HTTPServer(routes, limits or Limits(), name=f"edge {edge.name}")
        async with edge_metrics(edge.name, edge.cdn, routes.stats), \
                trio.open_nursery() as serving:
            listeners: list[trio.SocketListener] = await serving.start(partial(
                server.serve, host=edge.host, port=edge.port, shutdown=shutdown))
            host, port = listeners[0].socket.getsockname()[:2]
            if ":" in host:
                host = f"[{host}]"
            task_status.started(Edge(edge.name, edge.cdn, f"http://{host}:{port}", routes,
                                     server))
        fetchers.cancel_scope.cancel()


def _start_order(edges: tuple[EdgeConfig, ...]) -> list[EdgeConfig]:
    """Shields before the edges that pull from them (config rules out loops)."""
    by_name = {e.name: e for e in edges}

    def depth(edge: EdgeConfig) -> int:
        hops = 0
        while edge.upstream:
            edge, hops = by_name[edge.upstream], hops + 1
        return hops

    return sorted(edges, key=depth)


async def run(
    config: Config, *, task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    resources = current_resources()
    origin_url = resources.service_url("origin", "hls", config.origin_url)
    shutdown = shutdown_requested()

    async def send(batch: UsageBatch) -> None:
        bus = await resources.bus()
        await bus.enqueue(RECORDS_QUEUE, batch.stream_id, batch.encode())

    handles: dict[str, Edge] = {}
    urls: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        for edge in _start_order(config.cdn.edges):
            upstream_url = handles[edge.upstream].url if edge.upstream else origin_url
            recorder = UsageRecorder(edge.name, edge.cdn)
            handle: Edge = await nursery.start(partial(
                serve_edge, edge, upstream_url=upstream_url, recorder=recorder,
                shutdown=shutdown))
            nursery.start_soon(partial(recorder.run, send,
                                       interval_s=config.cdn.records_flush_s,
                                       shutdown=shutdown))
            handles[edge.name] = handle
            urls[edge.name] = edge.public_url or (handle.url if edge.port == 0 else edge.url)
            log.info("edge %s (cdn %s) serving at %s from %s, cache %d MB", edge.name,
                     edge.cdn, urls[edge.name], upstream_url, edge.cache_mb)
        task_status.started(ServiceInfo(name="edge", urls=urls,
                                        handles={"edges": handles}))
