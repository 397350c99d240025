"""`RedisBus`: the bus across processes, on the synchronous redis-py client in threads.

Work queue: one Redis stream per (queue, shard), one consumer group per stream, shard
ownership by leases (see `_redis_queue`). An entry is XACKed and XDELed in one script once
processed, so a stream holds exactly the shard's un-acked items; enqueue is a script that
appends only while XLEN < max_queued, and otherwise waits and retries (backpressure
across processes). No MAXLEN trimming: trimming is blind to the consumer group and would
drop un-acked items, so the bound is enforced at the producer instead.

Broadcast: Redis pub/sub. It is fire-and-forget, and that is the right trade here: every
broadcast message is already persisted before it is published, so a gateway that misses
messages (its connection dropped, or Redis cut it off as a slow subscriber) gets a
`Resync` and reloads the room's history from storage, deduplicating by message id.
Streams per room would add storage, trimming and a read cursor per gateway per room for
a guarantee the history already gives. Pub/sub ignores the database number: `prefix`
(`?prefix=` in the url) is what separates deployments sharing one Redis.

Threads: commands run behind one CapacityLimiter on a shared BlockingConnectionPool;
every blocking read (XREADGROUP BLOCK, pub/sub get_message) has its own connection and
thread, bounded to `block_s` per call so cancellation and shutdown stay prompt.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import redis
import trio

from ._interface import (
    Bus,
    BusClosed,
    BusError,
    BusUnavailable,
    Consumer,
    Message,
    Resync,
    Subscription,
    check_name,
    shard_for,
)
from ._redis_queue import ENQUEUE_LUA, GROUP, RedisConsumer, meta_key, stream_key

logger = logging.getLogger(__name__)
T = TypeVar("T")
ENQUEUE_RETRY_S = (0.002, 0.2)  # backoff from, to while a shard is full


class RedisBus:
    """`Bus` over one Redis; build it with `open_bus("redis://host:port/db?prefix=...")`."""

    def __init__(
        self,
        connection_kwargs: dict[str, Any],
        *,
        prefix: str,
        shards: int,
        max_queued: int,
        lease_s: float,
        block_s: float,
        threads: int,
        subscriber_buffer: int,
    ) -> None:
        self._kwargs = connection_kwargs
        self.prefix = prefix
        self._shards = shards
        self.max_queued = max_queued
        self.lease_s = lease_s
        self.block_s = block_s
        self._subscriber_buffer = subscriber_buffer
        self._limiter = trio.CapacityLimiter(threads)
        pool_class: Any = redis.BlockingConnectionPool  # waits for a connection, never fails
        self._pool = pool_class(max_connections=threads, timeout=10, **connection_kwargs)
        # Any: redis-py's reply types are unions over decode_responses; ours are bytes.
        self.client: Any = redis.Redis(connection_pool=self._pool)
        self._enqueue_script = self.client.register_script(ENQUEUE_LUA)
        self._ready_queues: set[str] = set()
        self._closed = False

    @property
    def shards(self) -> int:
        return self._shards

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        if self._closed:
            raise BusClosed("bus is closed")

    def blocking_pool(self) -> Any:
        """A pool of one connection, for a thread that blocks in reads."""
        kwargs = dict(self._kwargs)
        kwargs["socket_timeout"] = self.block_s + 10  # the server answers BLOCK in time
        kwargs["client_name"] = f"{self.prefix}-reader"  # visible in CLIENT LIST
        return redis.ConnectionPool(max_connections=1, **kwargs)

    async def call(self, fn: Callable[[], T], *, limiter: trio.CapacityLimiter | None = None) -> T:
        """Run blocking redis-py work in a thread, its errors mapped to the BusError family."""
        self.check_open()
        return await run_mapped(fn, limiter=limiter or self._limiter)

    async def ensure_queue(self, queue: str) -> None:
        """Create the shard streams' groups (idempotent) and pin the shard count."""
        check_name("queue", queue)
        if queue in self._ready_queues:
            return

        def work() -> None:
            meta = meta_key(self.prefix, queue)
            self.client.set(meta, self._shards, nx=True)
            stored = int(self.client.get(meta) or 0)
            if stored != self._shards:
                raise ValueError(
                    f"queue {queue!r} has {stored} shards in Redis; this bus was opened with "
                    f"{self._shards}: every process of a deployment must use the same count"
                )
            for shard in range(self._shards):
                try:  # id 0: items appended before the group existed are delivered too
                    self.client.xgroup_create(
                        stream_key(self.prefix, queue, shard), GROUP, id="0", mkstream=True
                    )
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

        await self.call(work)
        self._ready_queues.add(queue)

    async def enqueue(self, queue: str, key: str, payload: bytes) -> None:
        await self.ensure_queue(queue)
        shard = shard_for(key, self._shards)
        keys = [stream_key(self.prefix, queue, shard)]
        args: list[bytes | str | int] = [self.max_queued, key, payload]
        delay_s = ENQUEUE_RETRY_S[0]
        while True:
            added = await self.call(lambda: self._enqueue_script(keys=keys, args=args))
            if added is not None:
                return
            await trio.sleep(delay_s)  # full: the shard's consumer has to ack first
            delay_s = min(delay_s * 2, ENQUEUE_RETRY_S[1])

    @asynccontextmanager
    async def consume(self, queue: str, worker_id: str) -> AsyncIterator[Consumer]:
        await self.ensure_queue(queue)
        async with RedisConsumer.run(self, queue, worker_id) as consumer:
            yield consumer

    async def publish(self, topic: str, payload: bytes) -> None:
        check_name("topic", topic)
        channel = channel_name(self.prefix, topic)
        await self.call(lambda: self.client.publish(channel, payload))

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Subscription]:
        self.check_open()
        sub = _RedisSubscription(self, self._subscriber_buffer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sub.run)
            try:
                await sub.subscribe(*topics)
                yield sub
            finally:
                nursery.cancel_scope.cancel()

    async def ping(self) -> None:
        await self.call(self.client.ping)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await run_mapped(self._pool.disconnect, limiter=self._limiter)


async def run_mapped(
    fn: Callable[[], T], *, limiter: trio.CapacityLimiter, abandon: bool = False
) -> T:
    try:
        return await trio.to_thread.run_sync(fn, limiter=limiter, abandon_on_cancel=abandon)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BusUnavailable(f"redis: {exc}") from exc
    except redis.RedisError as exc:
        raise BusError(f"redis: {exc}") from exc


def channel_name(prefix: str, topic: str) -> str:
    return f"{prefix}:t:{topic}"


class _PubSub(redis.client.PubSub):
    """Counts reconnects: redis-py resubscribes silently, but messages were lost."""

    reconnects = 0

    def on_connect(self, connection: Any) -> None:
        self.reconnects += 1
        super().on_connect(connection)


class _RedisSubscription:
    """One pub/sub connection; its reader task alone touches it (redis-py's PubSub is
    not thread-safe), so subscribe/unsubscribe are requests to that task."""

    def __init__(self, bus: RedisBus, buffer: int) -> None:
        self._bus = bus
        self._topics: set[str] = set()  # what the iterator yields; changed by the API
        self._requests_send, self._requests = trio.open_memory_channel[
            tuple[str, list[str], trio.Event]
        ](64)
        self._out_send, self._out = trio.open_memory_channel[Message | Resync](buffer)
        self._pool = bus.blocking_pool()
        self._pubsub: Any = _PubSub(self._pool, ignore_subscribe_messages=False)
        self._limiter = trio.CapacityLimiter(1)

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._topics)

    async def subscribe(self, *topics: str) -> None:
        for topic in topics:
            check_name("topic", topic)
        new = [t for t in topics if t not in self._topics]
        self._topics.update(new)
        if new:
            done = trio.Event()
            await self._requests_send.send(("subscribe", new, done))
            await done.wait()

    async def unsubscribe(self, *topics: str) -> None:
        gone = [t for t in topics if t in self._topics]
        self._topics.difference_update(gone)  # the iterator drops them from now on
        if gone:
            done = trio.Event()
            await self._requests_send.send(("unsubscribe", gone, done))

    def __aiter__(self) -> AsyncIterator[Message | Resync]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message | Resync]:
        async for item in self._out:
            if isinstance(item, Resync):
                yield Resync(topics=self.topics)
            elif item.topic in self._topics:
                yield item

    async def run(self) -> None:
        """The reader: apply requests, then read for up to `block_s`, forever.

        After a reconnect (redis-py resubscribes by itself) it yields one Resync, once the
        server has confirmed the resubscription, so a history reload then misses nothing.
        """
        prefix_len = len(channel_name(self._bus.prefix, ""))
        waiting: dict[bytes, list[trio.Event]] = {}  # subscribe requests not yet confirmed
        todo: deque[tuple[str, list[str], trio.Event]] = deque()
        reconnects, resync_due = 0, False
        try:
            while True:
                if not todo and not self._pubsub.subscribed and not waiting:
                    todo.append(await self._requests.receive())  # idle until asked
                while True:
                    try:
                        todo.append(self._requests.receive_nowait())
                    except trio.WouldBlock:
                        break
                try:
                    while todo:
                        await self._apply(*todo[0], waiting)
                        todo.popleft()
                    messages = await self._call(self._read, abandon=True)
                except BusUnavailable as exc:
                    logger.warning("pub/sub connection lost, will resync: %s", exc)
                    await trio.sleep(min(1.0, self._bus.block_s))
                    continue
                if self._pubsub.reconnects != reconnects:
                    reconnects, resync_due = self._pubsub.reconnects, True
                for message in messages:
                    if message["type"] == "subscribe":
                        confirmed = waiting.pop(message["channel"], ())
                        for event in confirmed:
                            event.set()
                        if not confirmed and resync_due:
                            resync_due = False
                            await self._out_send.send(Resync(topics=frozenset()))
                    elif message["type"] == "message":
                        topic = message["channel"][prefix_len:].decode()
                        await self._out_send.send(Message(topic=topic, payload=message["data"]))
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._pubsub.close)
                await trio.to_thread.run_sync(self._pool.disconnect)

    async def _apply(
        self, op: str, topics: list[str], done: trio.Event, waiting: dict[bytes, list[trio.Event]]
    ) -> None:
        channels = [channel_name(self._bus.prefix, t) for t in topics]
        if op == "subscribe":
            for channel in channels:
                waiting.setdefault(channel.encode(), []).append(done)
            await self._call(lambda: self._pubsub.subscribe(*channels))
        else:
            await self._call(lambda: self._pubsub.unsubscribe(*channels))
            done.set()

    def _read(self) -> list[dict[str, Any]]:
        """In the thread: wait up to block_s for one message, then take what is ready."""
        messages: list[dict[str, Any]] = []
        message = self._pubsub.get_message(timeout=self._bus.block_s)
        while message is not None and len(messages) < 1000:
            messages.append(message)
            message = self._pubsub.get_message(timeout=0.0)
        return messages

    async def _call(self, fn: Callable[[], T], *, abandon: bool = False) -> T:
        return await run_mapped(fn, limiter=self._limiter, abandon=abandon)


def _conforms(bus: RedisBus) -> Bus:
    """Never called: makes mypy check RedisBus against the Bus protocol."""
    return bus
