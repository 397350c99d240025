"""The bus: a sharded, ordered work queue and a topic broadcast, in-process or on Redis.

`await open_bus("memory://")` (embedded default) or
`await open_bus("redis://host:port/db?prefix=streamscale")` returns a `Bus`; see
`_interface` for the semantics every implementation keeps.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import trio

from ..extras import require
from ._interface import (
    Bus,
    BusClosed,
    BusError,
    BusUnavailable,
    Consumer,
    Message,
    Resync,
    Subscription,
    WorkItem,
    shard_for,
)
from ._memory import MemoryBus

if TYPE_CHECKING:
    from ._redis import RedisBus

__all__ = [
    "Bus",
    "BusClosed",
    "BusError",
    "BusUnavailable",
    "Consumer",
    "MemoryBus",
    "Message",
    "RedisBus",
    "Resync",
    "Subscription",
    "WorkItem",
    "open_bus",
    "shard_for",
]

PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
USAGE = "use memory:// or redis://host:port/db (optionally ?prefix=name)"


def __getattr__(name: str) -> Any:
    """`RedisBus` is imported on first use: the `redis` package is an optional extra."""
    if name == "RedisBus":
        require("redis", extra="redis", what="RedisBus")
        from ._redis import RedisBus

        return RedisBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def open_bus(
    url: str = "memory://",
    *,
    shards: int = 16,
    max_queued: int = 10_000,
    lease_s: float = 10.0,
    block_s: float = 0.5,
    threads: int = 8,
    subscriber_buffer: int = 10_000,
) -> Bus:
    """Open a bus; for Redis, check that the server answers (BusUnavailable if not).

    `shards` per queue (every process of a deployment must agree); `max_queued` un-acked
    items per shard before `enqueue` waits; `lease_s` (Redis) how long a dead worker's
    shards stay orphaned before the others take them and redeliver its un-acked items;
    `block_s` (Redis) the longest a blocking read waits, which bounds how long closing
    a consumer or subscription takes; `subscriber_buffer` messages a subscription holds
    before its reader gets a Resync (in-process) or stops reading (Redis).
    """
    if shards < 1 or max_queued < 1 or threads < 1 or subscriber_buffer < 1:
        raise ValueError("shards, max_queued, threads and subscriber_buffer must be at least 1")
    if not lease_s > 0 or not block_s > 0:
        raise ValueError("lease_s and block_s must be positive")
    parts = urlsplit(url)
    if parts.scheme == "memory":
        if parts.netloc or parts.path or parts.query:
            raise ValueError(f"unsupported bus url {url!r}: {USAGE}")
        return MemoryBus(shards=shards, max_queued=max_queued, subscriber_buffer=subscriber_buffer)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"unsupported bus url {url!r}: {USAGE}")
    try:
        port = parts.port or 6379
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        raise ValueError(f"invalid bus url {url!r}: {USAGE}") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", ["streamscale"])[-1]
    if not parts.hostname or query or not PREFIX.fullmatch(prefix) or db < 0:
        raise ValueError(f"invalid bus url {url!r}: {USAGE}")
    redis = require("redis", extra="redis", what=f"bus url {parts.scheme}://")
    from ._redis import RedisBus

    kwargs: dict[str, object] = {
        "host": parts.hostname,
        "port": port,
        "db": db,
        "username": parts.username,
        "password": parts.password,
        "connection_class": redis.SSLConnection if parts.scheme == "rediss" else redis.Connection,
        "socket_timeout": 10.0,
        "socket_connect_timeout": 5.0,
    }
    bus = RedisBus(
        kwargs,
        prefix=prefix,
        shards=shards,
        max_queued=max_queued,
        lease_s=lease_s,
        block_s=block_s,
        threads=threads,
        subscriber_buffer=subscriber_buffer,
    )
    try:
        await bus.ping()
    except BaseException:
        with trio.CancelScope(shield=True):
            await bus.close()
        raise
    return bus
