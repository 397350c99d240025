"""`MemoryBus`: the bus inside one trio process (the embedded default).

The queue state is a trio synchronisation primitive in the sense that a memory channel is
one: plain structures changed only between checkpoints, so every change is atomic, with
one `_Queue.changed` event that waiters re-check on. A consumer "dies" only by leaving its
context, which the bus sees at once, so no lease timeout is needed in-process: its
un-acked items go back to the front of their shards and the shards to the others.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import trio

from ._interface import (
    Bus,
    BusClosed,
    Consumer,
    Message,
    Resync,
    Subscription,
    WorkItem,
    check_name,
    shard_for,
)


@dataclass(slots=True)
class _Shard:
    index: int
    ready: deque[WorkItem]
    unacked: dict[str, WorkItem]  # insertion order = delivery order
    owner: _MemoryConsumer | None = None

    @property
    def size(self) -> int:
        return len(self.ready) + len(self.unacked)


class _Queue:
    def __init__(self, name: str, shards: int) -> None:
        self.name = name
        self.shards = [_Shard(i, deque(), {}) for i in range(shards)]
        self.consumers: list[_MemoryConsumer] = []  # in join order
        self.changed = trio.Event()
        self.seq = itertools.count(1)

    def notify(self) -> None:
        self.rebalance()
        self.changed.set()
        self.changed = trio.Event()

    def rebalance(self) -> None:
        """Shard i belongs to consumer i mod n; a shard moves once its owner acked all."""
        n = len(self.consumers)
        for shard in self.shards:
            wanted = self.consumers[shard.index % n] if n else None
            if shard.owner is not wanted and (shard.owner is None or not shard.unacked):
                shard.owner = wanted


class _MemoryConsumer:
    def __init__(self, queue: _Queue, worker_id: str) -> None:
        self._queue = queue
        self._worker_id = worker_id
        self._cursor = 0  # round-robin start, so one busy shard cannot starve the others
        self.alive = True

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def shards(self) -> frozenset[int]:
        return frozenset(s.index for s in self._queue.shards if s.owner is self)

    def _readable(self) -> list[_Shard]:
        q = self._queue
        n = len(q.consumers)
        # A shard about to move to another consumer takes no new items: it drains.
        return [
            s for s in q.shards if s.owner is self and s.ready and q.consumers[s.index % n] is self
        ]

    async def receive(self) -> WorkItem:
        return (await self.receive_batch(1))[0]

    async def receive_batch(self, max_items: int) -> list[WorkItem]:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if not self.alive:
                await trio.lowlevel.checkpoint()  # a cancelled caller sees Cancelled
                raise BusClosed("consumer has left the queue")
            shards = self._readable()
            if shards:
                break
            await self._queue.changed.wait()
        taken: list[WorkItem] = []
        start = self._cursor % len(shards)
        self._cursor += 1
        order = shards[start:] + shards[:start]
        while len(taken) < max_items and order:
            for shard in order:  # one item per shard per round: fair across rooms
                if len(taken) >= max_items:
                    break
                item = shard.ready.popleft()
                item = replace(item, deliveries=item.deliveries + 1)
                shard.unacked[item.id] = item
                taken.append(item)
            order = [s for s in order if s.ready]
        await trio.lowlevel.cancel_shielded_checkpoint()
        return taken

    async def ack(self, *items: WorkItem) -> None:
        await trio.lowlevel.checkpoint()
        q = self._queue
        for item in items:
            if item.queue != q.name:
                raise ValueError(f"item from queue {item.queue!r} acked on {q.name!r}")
            shard = q.shards[item.shard]
            if shard.owner is self and self.alive:
                shard.unacked.pop(item.id, None)
        q.notify()

    def leave(self) -> None:
        """Put un-acked items back in front, in their order, and give the shards away."""
        self.alive = False
        q = self._queue
        q.consumers.remove(self)
        for shard in q.shards:
            if shard.owner is self:
                shard.ready.extendleft(reversed(list(shard.unacked.values())))
                shard.unacked.clear()
                shard.owner = None
        q.notify()

    def __aiter__(self) -> AsyncIterator[WorkItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WorkItem]:
        while True:
            try:
                item = await self.receive()
            except BusClosed:
                return
            yield item


class _MemorySubscription:
    def __init__(self, bus: MemoryBus, buffer: int) -> None:
        self._bus = bus
        self._topics: set[str] = set()
        self._send, self._receive = trio.open_memory_channel[Message](buffer)
        self._lost = False  # set by a publisher when the buffer was full

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._topics)

    def deliver(self, message: Message) -> None:
        if self._lost:
            return  # everything up to the reader's next Resync is lost anyway
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            self._lost = True

    async def subscribe(self, *topics: str) -> None:
        for topic in topics:
            check_name("topic", topic)
        self._bus.check_open()
        for topic in topics:
            self._topics.add(topic)
            self._bus.subscribers.setdefault(topic, set()).add(self)
        await trio.lowlevel.checkpoint()

    async def unsubscribe(self, *topics: str) -> None:
        for topic in topics:
            self._topics.discard(topic)
            subs = self._bus.subscribers.get(topic)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del self._bus.subscribers[topic]
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> AsyncIterator[Message | Resync]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message | Resync]:
        while True:
            try:
                message = self._receive.receive_nowait()
            except trio.WouldBlock:
                if self._lost:
                    self._lost = False
                    yield Resync(topics=self.topics)
                    continue
                message = await self._receive.receive()
            if message.topic in self._topics:  # not one that was buffered, then dropped
                yield message

    def close(self) -> None:
        topics = list(self._topics)
        for topic in topics:
            subs = self._bus.subscribers.get(topic)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del self._bus.subscribers[topic]
        self._topics.clear()
        self._send.close()


class MemoryBus:
    """The bus for one process; `shards` and `max_queued` (per shard) as in `Bus`."""

    def __init__(
        self, *, shards: int = 16, max_queued: int = 10_000, subscriber_buffer: int = 10_000
    ) -> None:
        if shards < 1 or max_queued < 1 or subscriber_buffer < 1:
            raise ValueError("shards, max_queued and subscriber_buffer must be at least 1")
        self._shards = shards
        self._max_queued = max_queued
        self._subscriber_buffer = subscriber_buffer
        self._queues: dict[str, _Queue] = {}
        self.subscribers: dict[str, set[_MemorySubscription]] = {}
        self._closed = False

    @property
    def shards(self) -> int:
        return self._shards

    def check_open(self) -> None:
        if self._closed:
            raise BusClosed("bus is closed")

    def _queue(self, name: str) -> _Queue:
        check_name("queue", name)
        self.check_open()
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name, self._shards)
        return queue

    async def enqueue(self, queue: str, key: str, payload: bytes) -> None:
        q = self._queue(queue)
        shard = q.shards[shard_for(key, self._shards)]
        await trio.lowlevel.checkpoint_if_cancelled()
        while shard.size >= self._max_queued:  # backpressure: wait for acks
            await q.changed.wait()
            self.check_open()
        item_id = str(next(q.seq))
        shard.ready.append(
            WorkItem(
                queue=queue, shard=shard.index, key=key, payload=payload, id=item_id, deliveries=0
            )
        )
        q.notify()
        await trio.lowlevel.cancel_shielded_checkpoint()

    @asynccontextmanager
    async def consume(self, queue: str, worker_id: str) -> AsyncIterator[Consumer]:
        q = self._queue(queue)
        consumer = _MemoryConsumer(q, worker_id)
        q.consumers.append(consumer)
        q.notify()
        try:
            yield consumer
        finally:
            consumer.leave()

    async def publish(self, topic: str, payload: bytes) -> None:
        check_name("topic", topic)
        self.check_open()
        message = Message(topic=topic, payload=payload)
        for sub in self.subscribers.get(topic, ()):
            sub.deliver(message)
        await trio.lowlevel.checkpoint()

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Subscription]:
        sub = _MemorySubscription(self, self._subscriber_buffer)
        try:
            await sub.subscribe(*topics)
            yield sub
        finally:
            sub.close()

    async def ping(self) -> None:
        self.check_open()
        await trio.lowlevel.checkpoint()

    async def close(self) -> None:
        self._closed = True
        for q in self._queues.values():
            for consumer in q.consumers:
                consumer.alive = False
            q.notify()  # wake waiters so they see the bus closed
        await trio.lowlevel.checkpoint()


def _conforms(bus: MemoryBus) -> Bus:
    """Never called: makes mypy check MemoryBus against the Bus protocol."""
    return bus
