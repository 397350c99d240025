"""The bus interface: a sharded, ordered work queue and a topic broadcast.

Chat uses both halves: gateways `enqueue` a room's messages (key = room id) for the worker
pool, a worker `ack`s an item only after it has persisted and broadcast it, and workers
`publish` to a room's topic, which every gateway holding viewers of that room subscribes to.

Two implementations share one contract suite (tests/backends/test_bus_contract.py): the
in-process `MemoryBus` (embedded default) and `RedisBus` (several processes over Redis).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


class BusError(Exception):
    """Base of the bus errors callers are expected to handle."""


class BusUnavailable(BusError):
    """The broker cannot be reached (Redis down, connection refused or timed out)."""


class BusClosed(BusError):
    """The bus was closed; open a new one."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkItem:
    """One work item as delivered to a consumer; hand it back to `Consumer.ack`."""

    queue: str
    shard: int
    key: str
    payload: bytes
    id: str  # opaque, unique within (queue, shard), increasing in enqueue order
    deliveries: int  # 1 on the first delivery; more means a retry (a previous owner died)

    @property
    def redelivered(self) -> bool:
        return self.deliveries > 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Resync:
    """Messages for these topics may have been lost here: reload them from history.

    Broadcast is at-most-once (the durable copy is in storage). A subscription yields this
    after its connection dropped (Redis) or it fell too far behind (buffer overflow).
    """

    topics: frozenset[str]


class Consumer(Protocol):
    """One worker's view of a queue: the items of the shards it currently owns.

    Each shard has at most one owner at a time; the bus balances shards across the live
    consumers of a queue and moves a shard only once its owner has acked everything it
    took from it. Within a shard, items arrive in enqueue order; ack them in that order
    (acking out of order keeps delivery at-least-once but loses order on a redelivery).
    """

    @property
    def worker_id(self) -> str: ...

    @property
    def shards(self) -> frozenset[int]:
        """The shards this consumer owns now (changes as workers join and leave)."""

    async def receive(self) -> WorkItem:
        """The next item, waiting for one."""

    async def receive_batch(self, max_items: int) -> list[WorkItem]:
        """Wait for at least one item, then take whatever else is ready, up to max_items."""

    async def ack(self, *items: WorkItem) -> None:
        """Done with these items: they are never delivered again.

        Items from a shard this consumer no longer owns (its lease was lost) are not acked:
        the shard's new owner gets them again, which is why processing must be idempotent.
        """

    def __aiter__(self) -> AsyncIterator[WorkItem]: ...


class Subscription(Protocol):
    """Messages of the subscribed topics, in publish order per publisher, as they arrive."""

    @property
    def topics(self) -> frozenset[str]: ...

    async def subscribe(self, *topics: str) -> None:
        """Add topics; returns once messages published from now on will arrive."""

    async def unsubscribe(self, *topics: str) -> None:
        """Drop topics; no message of theirs is yielded after this returns."""

    def __aiter__(self) -> AsyncIterator[Message | Resync]: ...


class Bus(Protocol):
    """Async work queue + broadcast. Every method is safe to call from many tasks."""

    @property
    def shards(self) -> int:
        """Shards per queue, fixed when the bus is opened (and, on Redis, per queue)."""

    async def enqueue(self, queue: str, key: str, payload: bytes) -> None:
        """Append to shard `shard_for(key, shards)`; waits while that shard is full.

        A shard is full when it holds `max_queued` items that are not yet acked. Items of
        one key are delivered in the order their `enqueue` calls returned.
        """

    def consume(self, queue: str, worker_id: str) -> AbstractAsyncContextManager[Consumer]:
        """Join the queue's worker pool until the context exits (or the process dies).

        Leaving, or dying, hands the shards and their un-acked items to the other
        consumers, which get those items again with `deliveries` raised.
        """

    async def publish(self, topic: str, payload: bytes) -> None:
        """Send to every current subscriber of `topic` (none: dropped). Never waits for
        slow subscribers: one that falls behind gets a `Resync` instead."""

    def subscribe(self, *topics: str) -> AbstractAsyncContextManager[Subscription]: ...

    async def ping(self) -> None:
        """Raises BusUnavailable if the broker cannot be reached."""

    async def close(self) -> None:
        """Release connections; idempotent. Leave consume/subscribe contexts first."""


def shard_for(key: str, shards: int) -> int:
    """Stable across processes and restarts (unlike `hash`): CRC-32 of the UTF-8 key."""
    return zlib.crc32(key.encode()) % shards


def check_name(kind: str, name: str) -> None:
    """Queue and topic names become Redis key parts: keep them short and printable."""
    if not name or len(name) > 200 or not name.isprintable():
        raise ValueError(f"invalid {kind} name {name!r}")
