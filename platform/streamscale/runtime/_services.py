"""The service registry: every role `streamscale up` knows, in start order."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..config import Config


@dataclass(frozen=True, kw_only=True)
class ServiceInfo:
    """What a service reports through task_status.started(): where to reach it."""

    name: str
    urls: dict[str, str] = field(default_factory=dict)  # label -> URL
    # In-process handles for tests and drills run in the same process (the media hub's
    # shed/restore, say); a separate process reaches the service over its URLs only.
    handles: dict[str, object] = field(default_factory=dict)


class ServiceRun(Protocol):
    def __call__(
        self, config: Config, *, task_status: trio.TaskStatus[ServiceInfo] = ...
    ) -> Awaitable[None]: ...


class NotYetAvailable(Exception):
    """The service belongs to a later issue and is not built yet."""


@dataclass(frozen=True, kw_only=True)
class Service:
    name: str
    summary: str
    module: str | None  # "streamscale.services.gateway"; None: not built yet
    issue: str = ""  # where the missing service is planned

    def load(self) -> ServiceRun:
        if self.module is None:
            raise NotYetAvailable(
                f"service {self.name!r} ({self.summary}) is not built yet: {self.issue}"
            )
        run: Callable[..., Any] = importlib.import_module(self.module).run
        return run


SERVICES: dict[str, Service] = {
    s.name: s
    for s in [
        Service(
            name="gateway",
            summary="HTTP API: users, streams, followers; auth and rate limits",
            module="streamscale.services.gateway",
        ),
        Service(
            name="media",
            summary="RTMP ingest, transcode ladder, HLS/LL-HLS packaging, recording",
            module="streamscale.services.media",
        ),
        Service(
            name="origin",
            summary="HLS origin: playlists and segments with blocking reload",
            module="streamscale.services.origin",
            issue="the media path (issue #4)",
        ),
        Service(
            name="edge",
            summary="CDN edge caches (every edge in [cdn] edges), coalescing, access records",
            module="streamscale.services.cdn.edge",
            issue="CDN edges (issue #12)",
        ),
        Service(
            name="chat",
            summary="WebSocket chat gateway, workers and moderation",
            module="streamscale.services.chat",
        ),
        Service(
            name="analytics",
            summary="viewer counts from edge records; stored over time",
            module="streamscale.services.analytics",
        ),
    ]
}



def resolve(names: str | None) -> list[Service]:
    """`"gateway,media"` -> services in registry order; None -> every built service."""
    if names is None:
        return [s for s in SERVICES.values() if s.module is not None]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise ValueError("--services: give at least one service name")
    unknown = [n for n in wanted if n not in SERVICES]
    if unknown:
        raise ValueError(
            f"--services: unknown service {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(SERVICES)}"
        )
    return [s for name, s in SERVICES.items() if name in wanted]
