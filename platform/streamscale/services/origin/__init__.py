"""The HLS origin: live playlists and media from the in-process registry, recordings from
disk, on a lean h11 listener (DESIGN.md: media delivery never goes through ASGI).

The packager publishes into the `MediaRegistry` (`runtime.current_resources()
.media_registry()`); `run` serves it at `config.origin`. With CDNs configured
(`cdn.edges`), `run` also probes their health, serves content steering, admits direct
viewers up to `cdn.origin_viewer_limit` and sends their usage records over the bus.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import trio

from ...config import Config
from ...runtime import ServiceInfo, current_resources, shutdown_requested
from ..cdn.health import CdnHealth
from ..cdn.records import RECORDS_QUEUE, UsageBatch, UsageRecorder
from ..cdn.steering import Steering
from ..lean_http import HTTPServer, Limits
from ._admission import Admission
from ._metrics import origin_metrics
from ._routes import OriginRoutes
from ._vod import VodFiles
from .registry import MediaRegistry

log = logging.getLogger(__name__)

__all__ = ["Admission", "Limits", "MediaRegistry", "run", "serve_origin"]


async def serve_origin(
    registry: MediaRegistry,
    recordings_root: Path | None,
    *,
    host: str,
    port: int,
    limits: Limits | None = None,
    shutdown: trio.Event | None = None,
    steering: Steering | None = None,
    admission: Admission | None = None,
    recorder: UsageRecorder | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` (default: the runtime's shutdown event), then drain.

    Reports the base URL (`http://host:port`, the real port when `port` is 0). With
    `steering`, masters list the CDN pathways and /steering/ is served; with `admission`,
    direct viewers are limited (and recorded with `recorder`)."""
    vod = VodFiles(recordings_root) if recordings_root is not None else None
    routes = OriginRoutes(registry, vod, steering=steering, admission=admission,
                          recorder=recorder)
    server = HTTPServer(routes, limits or Limits())
    async with origin_metrics(routes.stats), trio.open_nursery() as nursery:
        listeners: list[trio.SocketListener] = await nursery.start(partial(
            server.serve, host=host, port=port,
            shutdown=shutdown if shutdown is not None else shutdown_requested(),
        ))
        bound_host, bound_port = listeners[0].socket.getsockname()[:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        task_status.started(f"http://{bound_host}:{bound_port}")


async def run(
    config: Config, *, task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    registry = current_resources().media_registry()
    origin, cdn = config.origin, config.cdn
    shutdown = shutdown_requested()
    steering = admission = recorder = None

    async with trio.open_nursery() as nursery:
        if cdn.edges:
            health = CdnHealth(cdn, observer="origin")
            steering = Steering(health)
            admission = Admission(cdn.origin_viewer_limit, cdn.origin_session_idle_s)
            recorder = UsageRecorder("origin")
            await nursery.start(partial(health.run, shutdown=shutdown))
            nursery.start_soon(partial(recorder.run, _send_records,
                                       interval_s=cdn.records_flush_s, shutdown=shutdown))
        bound: str = await nursery.start(partial(
            serve_origin, registry, config.recordings_root, host=origin.host, port=origin.port,
            steering=steering, admission=admission, recorder=recorder,
        ))
        base = origin.public_url or (bound if origin.port == 0 else config.origin_url)
        if steering is not None:
            steering.origin_url = base.rstrip("/")
        log.info("origin serving HLS at %s", base)
        task_status.started(ServiceInfo(
            name="origin", urls={"hls": base},
            handles={} if admission is None else {"admission": admission,
                                                  "steering": steering}))


async def _send_records(batch: UsageBatch) -> None:
    bus = await current_resources().bus()
    await bus.enqueue(RECORDS_QUEUE, batch.stream_id, batch.encode())
