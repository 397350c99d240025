"""Process-wide resources shared by the services of one process (one store, one clock).

`streamscale up` runs every service in one process: they share one Store (one SQLite
file, one thread limiter). Run alone (`--services gateway`), a service opens its own.
Resources live in a context variable set by `open_resources`, which trio copies into
every task spawned below it, so a service finds them without extra parameters and the
`run(config, *, task_status)` signature stays the same for every service.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ..backends.storage import Store
from ..config import Config
from ._at_rest import load_secrets_key, secure_data_dir
from ._metrics import Metrics

if TYPE_CHECKING:
    from ..backends.bus import Bus
    from ..services.chat.service import PostLimits
    from ..services.origin.registry import MediaRegistry

_current: contextvars.ContextVar[Resources] = contextvars.ContextVar("streamscale_resources")


@dataclass(eq=False)
class Resources:
    config: Config
    _store: Store | None = None
    _store_lock: trio.Lock = field(default_factory=trio.Lock)
    _media: MediaRegistry | None = None
    _bus: Bus | None = None
    _bus_lock: trio.Lock = field(default_factory=trio.Lock)
    _post_limits: PostLimits | None = None
    # service -> label -> URL of the services started in this process (their real ports
    # when configured with port 0); other processes' services are found from the config.
    started_urls: dict[str, dict[str, str]] = field(default_factory=dict)
    # Prometheus collectors of this process's services (runtime/_metrics.py)
    metrics: Metrics = field(default_factory=Metrics)

    def service_url(self, service: str, label: str, default: str) -> str:
        """Where `service` serves `label`: its bound URL if it runs in this process, else
        `default` (the configured one)."""
        return self.started_urls.get(service, {}).get(label, default)

    async def store(self) -> Store:
        """The process's store, opened (and migrated) on first use."""
        async with self._store_lock:
            if self._store is None:
                from ..backends.storage import SecretsKeyError, open_store

                key, source = await trio.to_thread.run_sync(load_secrets_key, self.config)
                try:
                    self._store = await open_store(
                        self.config.storage_url,
                        threads=self.config.storage.threads,
                        echo=self.config.storage.echo,
                        secrets_key=key,
                    )
                except SecretsKeyError as exc:
                    raise SecretsKeyError(f"{exc} [secrets key: {source}]") from None
            return self._store

    async def bus(self) -> Bus:
        """The process's bus (chat work queue and broadcast), opened on first use."""
        async with self._bus_lock:
            if self._bus is None:
                from ..backends.bus import open_bus

                self._bus = await open_bus(self.config.chat.bus_url,
                                           shards=self.config.chat.shards)
            return self._bus

    def media_registry(self) -> MediaRegistry:
        """The live media table the packager publishes to and the origin serves from."""
        if self._media is None:
            from ..services.origin.registry import MediaRegistry

            self._media = MediaRegistry()
        return self._media

    def post_limits(self) -> PostLimits:
        """The process's chat post limits: the API's HTTP posts and the WebSocket gateway's
        posts count against the same per-user and per-room budgets."""
        if self._post_limits is None:
            from ..services.chat.service import PostLimits

            chat = self.config.chat
            self._post_limits = PostLimits(chat, quiet_s=chat.room_quiet_s)
        return self._post_limits

    async def aclose(self) -> None:
        if self._bus is not None:
            with trio.CancelScope(shield=True):
                await self._bus.close()
            self._bus = None
        if self._store is not None:
            with trio.CancelScope(shield=True):
                await self._store.close()
            self._store = None


@asynccontextmanager
async def open_resources(config: Config) -> AsyncIterator[Resources]:
    await trio.to_thread.run_sync(secure_data_dir, config)
    resources = Resources(config)
    token = _current.set(resources)
    try:
        yield resources
    finally:
        _current.reset(token)
        await resources.aclose()


def current_resources() -> Resources:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError(
            "no resources: run services inside runtime.open_resources(config)"
        ) from None
