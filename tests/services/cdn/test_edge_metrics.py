"""The edge's `/metrics` on its own listener, beside the origin's: N viewers through one
edge move the edge's requests by N and the origin's by one (cache and coalescing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import trio
import trio.testing

from streamscale.config import EdgeConfig
from streamscale.runtime import open_resources
from streamscale.services.cdn.edge import Edge, serve_edge
from streamscale.services.origin import MediaRegistry, serve_origin
from streamscale.testing import make_config
from streamscale.testing.metrics import scrape

from ..origin.streams import LiveFeeder, RawClient, get
from .conftest import LIMITS, open_edge, parked

VIEWERS = 20
EDGE_LABELS = {"edge": "a1", "cdn": "a"}


@dataclass
class Running:
    origin_url: str
    registry: MediaRegistry
    edge: Edge


@asynccontextmanager
async def runtime_edge(tmp_path: Path) -> AsyncIterator[Running]:
    """An origin and an edge as the runtime runs them (so they report to /metrics)."""
    registry, shutdown = MediaRegistry(), trio.Event()
    async with open_resources(make_config(tmp_path)), trio.open_nursery() as nursery:
        origin_url: str = await nursery.start(partial(
            serve_origin, registry, None, host="127.0.0.1", port=0, limits=LIMITS,
            shutdown=shutdown))
        edge: Edge = await nursery.start(partial(
            serve_edge, EdgeConfig(name="a1", cdn="a"), upstream_url=origin_url,
            limits=LIMITS, shutdown=shutdown))
        try:
            yield Running(origin_url, registry, edge)
        finally:
            shutdown.set()


async def test_viewers_through_an_edge_cost_the_origin_one_request(tmp_path: Path) -> None:
    async with runtime_edge(tmp_path) as running, httpx.AsyncClient(timeout=30) as client:
        edge = running.edge
        feed = LiveFeeder(running.registry)
        feed.seconds(1.2)
        playlist = (await client.get(f"{edge.url}/live/s1/hi/index.m3u8")).text
        msn = max(int(line.split('URI="')[1].split(".")[0])
                  for line in playlist.splitlines() if line.startswith("#EXT-X-PART:"))
        edge_before = await scrape(client, f"{edge.url}/metrics")
        origin_before = await scrape(client, f"{running.origin_url}/metrics")

        # N viewers ask for the init segment (immutable): one upstream fetch, N-1 hits
        for _ in range(VIEWERS):
            r = await client.get(f"{edge.url}/live/s1/hi/init.mp4")
            assert r.status_code == 200
        # N viewers park on the next segment's blocking reload: one fetch for them all
        reload = f"/live/s1/hi/index.m3u8?_HLS_msn={msn + 1}&_HLS_part=0"
        statuses: list[int] = []

        async def viewer(i: int) -> None:
            raw = await RawClient.connect(edge.url)
            await raw.send_raw(get(f"{reload}&CMCD=sid%3D%22v{i}%22"))
            answer = await raw.response()
            assert answer is not None
            statuses.append(answer[0].status_code)
            await raw.aclose()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(VIEWERS):
                    nursery.start_soon(viewer, i)
                await parked(edge, VIEWERS)
                while running.registry.waiting("s1") < 1:
                    await trio.testing.wait_all_tasks_blocked()
                held = await scrape(client, f"{running.origin_url}/metrics")
                assert held.value("streamscale_origin_blocking_reloads_parked") == 1
                feed.seconds(msn + 2.1)  # the next segment's first part
        assert statuses == [200] * VIEWERS
        edge_after = await scrape(client, f"{edge.url}/metrics")
        origin_after = await scrape(client, f"{running.origin_url}/metrics")

    def edge_moved(name: str) -> float:
        return (edge_after.value(name, **EDGE_LABELS)
                - edge_before.value(name, **EDGE_LABELS))

    def origin_moved(name: str, **labels: str) -> float:
        return origin_after.value(name, **labels) - origin_before.value(name, **labels)

    assert edge_moved("streamscale_edge_requests_total") == 2 * VIEWERS
    assert edge_moved("streamscale_edge_hits_total") == VIEWERS - 1
    assert edge_moved("streamscale_edge_misses_total") == 1 + VIEWERS
    assert edge_moved("streamscale_edge_coalesced_total") == VIEWERS - 1
    assert edge_moved("streamscale_edge_upstream_requests_total") == 2
    assert edge_moved("streamscale_edge_upstream_errors_total") == 0
    assert edge_after.value("streamscale_edge_cached_bytes", **EDGE_LABELS) > 0
    # what reached the origin: one init, one blocking reload (and the scrapes: "other")
    assert origin_moved("streamscale_origin_requests_total", kind="init") == 1
    assert origin_moved("streamscale_origin_requests_total", kind="blocking") == 1
    assert origin_moved("streamscale_origin_requests_total") == 2 + 2  # + 2 scrapes
    assert origin_after.value("streamscale_origin_blocking_reloads_parked") == 0
    # one process, one registry: the edge's listener serves the origin's families too
    assert "streamscale_origin_requests_total" in edge_after


async def test_upstream_errors_are_counted(tmp_path: Path) -> None:
    async with runtime_edge(tmp_path) as running, httpx.AsyncClient(timeout=30) as client:
        edge = running.edge
        down = await trio.open_tcp_listeners(0, host="127.0.0.1")  # a free port...
        port = down[0].socket.getsockname()[1]
        await down[0].aclose()  # ...where nothing listens: connection refused
        async with open_edge("x1", f"http://127.0.0.1:{port}", cdn="x") as orphan:
            r = await client.get(f"{orphan.url}/live/s1/hi/init.mp4")
            assert r.status_code == 502
            after = await scrape(client, f"{edge.url}/metrics")
    assert after.value("streamscale_edge_upstream_errors_total", edge="x1", cdn="x") == 1
    assert after.value("streamscale_edge_upstream_errors_total", edge="a1") == 0
    assert after.value("streamscale_edge_requests_total", edge="x1") == 1
    # both edges in one family each (one collector for the process's edges)
    assert {labels["edge"] for labels, _ in after.matching("streamscale_edge_hits_total")} \
        == {"a1", "x1"}


async def test_an_edge_alone_has_no_metrics(edge: Edge) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{edge.url}/metrics")
    assert r.status_code == 404
