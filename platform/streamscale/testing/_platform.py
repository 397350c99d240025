"""Run services in-process on free ports, as `streamscale up` would, for tests and benches."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ..config import (
    AuthConfig,
    CdnConfig,
    ChatConfig,
    Config,
    EdgeConfig,
    GatewayConfig,
    MediaConfig,
    OriginConfig,
    StorageConfig,
)
from ..runtime import ServiceInfo, resolve, run_services


def make_config(data_dir: Path, *, storage_url: str = "", **sections: Any) -> Config:
    """A config on free ports (0) under `data_dir`; override sections by keyword.

    Password hashing is made cheap (argon2id t=1, 8 MiB): tests exercise the logic, and
    bench/api.py measures the real cost with the defaults.
    """
    base = Config(
        data_dir=data_dir,
        auth=AuthConfig(password_time_cost=1, password_memory_kib=8192,
                        password_parallelism=1),
        gateway=GatewayConfig(port=0, login_rate_per_minute=1000, write_rate_per_minute=1000,
                              shutdown_grace_s=2.0),
        storage=StorageConfig(url=storage_url),
        media=MediaConfig(rtmp_port=0),
        origin=OriginConfig(port=0),
        chat=ChatConfig(port=0),
        cdn=CdnConfig(edges=(EdgeConfig(name="a1", cdn="a"), EdgeConfig(name="b1", cdn="b"))),
    )
    return dataclasses.replace(base, **sections)


@dataclass(frozen=True)
class RunningPlatform:
    config: Config
    services: list[ServiceInfo]
    shutdown: trio.Event

    def url(self, service: str, label: str) -> str:
        for info in self.services:
            if info.name == service:
                return info.urls[label]
        raise KeyError(f"service {service!r} is not running")

    def handle(self, service: str, name: str) -> object:
        """An in-process handle a service exposes (e.g. `handle("media", "hub")`)."""
        for info in self.services:
            if info.name == service:
                return info.handles[name]
        raise KeyError(f"service {service!r} is not running")

    @property
    def api_url(self) -> str:
        return self.url("gateway", "api")


@asynccontextmanager
async def running_platform(
    config: Config, services: Sequence[str] = ("gateway",)
) -> AsyncIterator[RunningPlatform]:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        infos: list[ServiceInfo] = await nursery.start(partial(
            run_services, config, resolve(",".join(services)), shutdown=shutdown,
            grace_s=config.gateway.shutdown_grace_s,
        ))
        try:
            yield RunningPlatform(config, infos, shutdown)
        finally:
            shutdown.set()
