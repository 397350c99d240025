"""The HLS origin: live playlists and media from the in-process registry, recordings from
disk, on a lean h11 listener (DESIGN.md: media delivery never goes through ASGI).

The packager publishes into the `MediaRegistry` (`runtime.current_resources()
.media_registry()`); `run` serves it at `config.origin`.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import trio

from ...config import Config
from ...runtime import ServiceInfo, current_resources, shutdown_requested
from ..lean_http import HTTPServer, Limits
from ._routes import OriginRoutes
from ._vod import VodFiles
from .registry import MediaRegistry

log = logging.getLogger(__name__)

__all__ = ["Limits", "MediaRegistry", "run", "serve_origin"]


async def serve_origin(
    registry: MediaRegistry,
    recordings_root: Path | None,
    *,
    host: str,
    port: int,
    limits: Limits | None = None,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` (default: the runtime's shutdown event), then drain.

    Reports the base URL (`http://host:port`, the real port when `port` is 0)."""
    vod = VodFiles(recordings_root) if recordings_root is not None else None
    server = HTTPServer(OriginRoutes(registry, vod), limits or Limits())
    async with trio.open_nursery() as nursery:
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
    origin = config.origin

    async with trio.open_nursery() as nursery:
        bound: str = await nursery.start(partial(
            serve_origin, registry, config.recordings_root, host=origin.host, port=origin.port
        ))
        base = origin.public_url or (bound if origin.port == 0 else config.origin_url)
        log.info("origin serving HLS at %s", base)
        task_status.started(ServiceInfo(name="origin", urls={"hls": base}))
