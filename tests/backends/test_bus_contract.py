"""The `Bus` contract, run against the in-process bus and the real Redis at 127.0.0.1:6379.

Each Redis test gets its own key prefix (keys deleted afterwards); a second `RedisBus` on
the same prefix stands in for a second process. Memory tests that need a timeout to fire
run on trio's MockClock (the `clock` fixture); Redis tests use short real timeouts.
Nothing here sleeps to synchronise: tests wait for the events they assert on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis
import trio
from trio.testing import MockClock

from streamscale.backends.bus import (
    Bus,
    BusClosed,
    BusUnavailable,
    Consumer,
    Message,
    RedisBus,
    Resync,
    Subscription,
    WorkItem,
    open_bus,
    shard_for,
)
from streamscale.backends.bus._redis_queue import RedisConsumer
from streamscale.testing.redis_keys import redis_key_prefix

REDIS = "redis://127.0.0.1:6379/0"
LEASE_S = 1.0  # Redis: a crashed worker's shards are taken over after this
SHARDS = 8
Opener = Callable[..., Awaitable[Bus]]
REDIS_ONLY = pytest.mark.parametrize("bus_kind", [pytest.param("redis", marks=pytest.mark.redis)])


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(bus_kind: str) -> MockClock | None:
    """pytest-trio runs the test on this clock when it is one: memory only (Redis needs
    real time, and autojump would fire timeouts while a thread waits on the server)."""
    return MockClock(autojump_threshold=0) if bus_kind == "memory" else None


@pytest.fixture
def prefix() -> Iterator[str]:
    yield from redis_key_prefix("bus")


@pytest.fixture
async def opener(bus_kind: str, prefix: str) -> AsyncIterator[Opener]:
    """Opens buses of this kind, sharing state as processes of one deployment would."""
    opened: list[Bus] = []
    memory: dict[str, Bus] = {}

    async def make(**options: object) -> Bus:
        options = {"shards": SHARDS, **options}
        if bus_kind == "memory":
            name = str(options.pop("name", "default"))
            if name not in memory:
                memory[name] = await open_bus("memory://", **options)  # type: ignore[arg-type]
                opened.append(memory[name])
            return memory[name]
        options.pop("name", None)
        options = {"lease_s": LEASE_S, "block_s": 0.1, **options}
        bus = await open_bus(f"{REDIS}?prefix={prefix}", **options)  # type: ignore[arg-type]
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        await bus.close()


@pytest.fixture
async def bus(opener: Opener) -> Bus:
    return await opener()


async def drain(
    consumer: Consumer,
    seen: list[WorkItem],
    done: Callable[[], bool],
    finished: trio.Event,
) -> None:
    """Process batches until `done()`; an item counts as seen once its ack returned (an
    item taken but not acked when the workers are cancelled is legitimately redelivered)."""
    while True:
        batch = await consumer.receive_batch(50)
        await consumer.ack(*batch)
        seen.extend(batch)
        if done():
            finished.set()


# work queue ------------------------------------------------------------------------------
async def test_per_key_order_is_kept_across_many_interleaved_keys(opener: Opener) -> None:
    bus, peer = await opener(), await opener()
    keys = [f"room-{i}" for i in range(40)]
    per_key = 20
    seen: list[WorkItem] = []
    finished = trio.Event()
    with trio.fail_after(20):
        async with (
            bus.consume("chat", "w1") as one,
            peer.consume("chat", "w2") as two,
            trio.open_nursery() as nursery,
        ):
            for consumer in (one, two):
                nursery.start_soon(
                    drain, consumer, seen, lambda: len(seen) >= len(keys) * per_key, finished
                )
            for n in range(per_key):
                for key in keys:
                    await bus.enqueue("chat", key, f"{key}/{n}".encode())
            await finished.wait()
            nursery.cancel_scope.cancel()
    by_key: dict[str, list[int]] = defaultdict(list)
    for item in seen:
        assert item.shard == shard_for(item.key, SHARDS)
        key, index = item.payload.decode().split("/")
        assert key == item.key
        by_key[key].append(int(index))
    assert by_key == {key: list(range(per_key)) for key in keys}


async def test_every_item_is_consumed_exactly_once_when_nothing_fails(opener: Opener) -> None:
    buses = [await opener() for _ in range(3)]
    total = 300
    seen: list[WorkItem] = []
    finished = trio.Event()

    async def produce(bus: Bus, start: int) -> None:
        for n in range(start, total, 3):
            await bus.enqueue("chat", f"room-{n % 17}", str(n).encode())

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i, bus in enumerate(buses):
                consumer = await nursery.start(_serve, bus, f"w{i}")
                nursery.start_soon(drain, consumer, seen, lambda: len(seen) >= total, finished)
            async with trio.open_nursery() as producers:
                for i, bus in enumerate(buses):
                    producers.start_soon(produce, bus, i)
            await finished.wait()
            nursery.cancel_scope.cancel()
    assert Counter(int(i.payload) for i in seen) == Counter(range(total))
    assert all(i.deliveries == 1 and not i.redelivered for i in seen)


async def _serve(
    bus: Bus, worker_id: str, *, task_status: trio.TaskStatus[Consumer] = trio.TASK_STATUS_IGNORED
) -> None:
    """Hold a consumer open for the life of the enclosing nursery."""
    async with bus.consume("chat", worker_id) as consumer:
        task_status.started(consumer)
        await trio.sleep_forever()


async def test_a_dead_workers_unacked_items_go_to_the_next_owner(opener: Opener) -> None:
    bus = await opener()
    for n in range(10):
        await bus.enqueue("chat", "room-1", str(n).encode())
    taken: list[WorkItem] = []
    with trio.fail_after(10):
        async with bus.consume("chat", "doomed") as doomed:
            for _ in range(4):
                taken.append(await doomed.receive())  # processing... then it dies
        peer = await opener()
        got: list[WorkItem] = []
        async with peer.consume("chat", "heir") as heir:
            while len(got) < 10:
                batch = await heir.receive_batch(10)
                got.extend(batch)
                await heir.ack(*batch)
    assert [int(i.payload) for i in taken] == [0, 1, 2, 3]
    assert [int(i.payload) for i in got] == list(range(10))  # in order, none lost
    assert [i.id for i in got[:4]] == [i.id for i in taken]
    assert all(i.deliveries >= 2 and i.redelivered for i in got[:4])
    # Redis prefetches: the rest may count as delivered to the dead worker too.
    assert all(i.deliveries in (1, 2) for i in got[4:])


@REDIS_ONLY  # in-process, a worker cannot die without the bus seeing it leave
async def test_crashed_worker_shards_are_taken_over_after_the_lease(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that dies releases nothing: its leases run out, then its items move."""

    async def crash(self: RedisConsumer) -> None:
        pass

    monkeypatch.setattr(RedisConsumer, "_release", crash)
    bus = await opener(lease_s=0.5)
    for n in range(3):
        await bus.enqueue("chat", "room-7", str(n).encode())
    with trio.fail_after(10):
        async with bus.consume("chat", "doomed") as doomed:
            first = await doomed.receive()
        started = trio.current_time()
        peer = await opener(lease_s=0.5)
        async with peer.consume("chat", "heir") as heir:
            got = [await heir.receive() for _ in range(3)]
            await heir.ack(*got)
    assert trio.current_time() - started >= 0.3  # it waited for the dead lease
    assert [int(i.payload) for i in got] == [0, 1, 2]
    assert got[0].id == first.id and got[0].deliveries == 2


async def test_two_workers_split_the_shards_and_never_hold_one_together(
    opener: Opener,
) -> None:
    bus, peer = await opener(), await opener()
    holding: dict[int, Counter[str]] = defaultdict(Counter)  # shard -> worker -> un-acked
    seen: list[tuple[str, WorkItem]] = []
    both_working, drained = trio.Event(), trio.Event()
    sent: int | None = None

    async def work(consumer: Consumer, other: Consumer) -> None:
        me = consumer.worker_id
        while True:
            batch = await consumer.receive_batch(20)
            for item in batch:
                others = {w for w, n in holding[item.shard].items() if n and w != me}
                assert not others, f"shard {item.shard} held by {others} and {me}"
                assert not (consumer.shards & other.shards)
                holding[item.shard][me] += 1
            await trio.lowlevel.checkpoint()  # "persist and broadcast"
            await consumer.ack(*batch)
            for item in batch:
                holding[item.shard][me] -= 1
                seen.append((me, item))
            if {w for w, _ in seen} == {"w1", "w2"}:
                both_working.set()
            if sent is not None and len(seen) >= sent:
                drained.set()

    with trio.fail_after(20):
        async with (
            bus.consume("chat", "w1") as one,
            peer.consume("chat", "w2") as two,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(work, one, two)
            nursery.start_soon(work, two, one)
            count = 0
            while not both_working.is_set():  # keep work coming until the split happened
                await bus.enqueue("chat", f"room-{count % 50}", str(count).encode())
                count += 1
            sent = count
            await bus.enqueue("chat", "room-0", str(count).encode())  # wakes a worker
            sent += 1
            await drained.wait()
            nursery.cancel_scope.cancel()
    assert sorted(int(i.payload) for _, i in seen) == list(range(sent))


async def test_enqueue_waits_while_the_shard_is_full(opener: Opener, clock: object) -> None:
    bus = await opener(max_queued=3)
    for n in range(3):
        await bus.enqueue("chat", "room-1", str(n).encode())
    with trio.move_on_after(0.3) as blocked:
        await bus.enqueue("chat", "room-1", b"3")
    assert blocked.cancelled_caught
    await bus.enqueue("chat", "room-2", b"other")  # another shard is not full
    with trio.fail_after(10):
        async with bus.consume("chat", "w") as consumer, trio.open_nursery() as nursery:
            nursery.start_soon(bus.enqueue, "chat", "room-1", b"3")  # waits for an ack
            got: list[bytes] = []
            while len(got) < 5:
                item = await consumer.receive()
                got.append(item.payload)
                await consumer.ack(item)
    assert [p for p in got if p != b"other"] == [b"0", b"1", b"2", b"3"]


# broadcast -------------------------------------------------------------------------------
async def collect_until(sub: Subscription, last: bytes) -> list[tuple[str, bytes]]:
    """Everything `sub` yields up to and including the payload `last`."""
    got: list[tuple[str, bytes]] = []
    async for message in sub:
        assert isinstance(message, Message), message
        got.append((message.topic, message.payload))
        if message.payload == last:
            return got
    raise AssertionError("subscription ended")


async def test_publish_reaches_every_subscriber_of_the_topic_and_no_other(
    opener: Opener,
) -> None:
    bus, gateway = await opener(), await opener()
    with trio.fail_after(10):
        async with (
            gateway.subscribe("room-a", "room-b") as ab,
            gateway.subscribe("room-b") as b,
            bus.subscribe("room-c") as c,
        ):
            for topic in ("room-a", "room-b", "room-c", "room-d"):
                await bus.publish(topic, topic.encode())
            for topic in ("room-a", "room-b", "room-c"):
                await bus.publish(topic, b"end")
            assert await collect_until(ab, b"end") == [
                ("room-a", b"room-a"),
                ("room-b", b"room-b"),
                ("room-a", b"end"),
            ]
            assert await collect_until(b, b"end") == [("room-b", b"room-b"), ("room-b", b"end")]
            assert await collect_until(c, b"end") == [("room-c", b"room-c"), ("room-c", b"end")]
            assert ab.topics == {"room-a", "room-b"}


async def test_subscribe_and_unsubscribe_at_runtime(opener: Opener) -> None:
    bus = await opener()
    with trio.fail_after(10):
        async with bus.subscribe("room-a") as sub:
            await bus.publish("room-a", b"1")
            assert await collect_until(sub, b"1") == [("room-a", b"1")]
            await sub.subscribe("room-b")  # returns once room-b's messages will arrive
            await bus.publish("room-b", b"2")
            await sub.unsubscribe("room-a")
            await bus.publish("room-a", b"lost")
            await bus.publish("room-b", b"3")
            assert await collect_until(sub, b"3") == [("room-b", b"2"), ("room-b", b"3")]
            assert sub.topics == {"room-b"}


async def test_unsubscribe_drops_messages_already_on_their_way(opener: Opener) -> None:
    bus = await opener()
    with trio.fail_after(10):
        async with bus.subscribe("room-a", "room-b") as sub:
            for n in range(20):
                await bus.publish("room-a", str(n).encode())
            await sub.unsubscribe("room-a")
            await bus.publish("room-b", b"end")
            assert await collect_until(sub, b"end") == [("room-b", b"end")]


async def test_many_topics(opener: Opener) -> None:
    bus = await opener()
    topics = [f"room-{i}" for i in range(300)]
    with trio.fail_after(15):
        async with bus.subscribe(*topics) as everything, bus.subscribe(*topics[::2]) as half:
            for topic in topics:
                await bus.publish(topic, topic.encode())
            await bus.publish(topics[-2], b"end")
            got_all = await collect_until(everything, b"end")
            got_half = await collect_until(half, b"end")
    assert [t for t, _ in got_all[:-1]] == topics
    assert [t for t, _ in got_half[:-1]] == topics[::2]


async def test_a_subscriber_that_falls_behind_gets_a_resync() -> None:
    """In-process, publishers never wait for a full subscriber: it loses the overflow
    and is told so. (Redis: the server cuts off a slow subscriber; see the next test.)"""
    bus = await open_bus("memory://", subscriber_buffer=4)
    async with bus.subscribe("room-a") as sub:
        for n in range(10):
            await bus.publish("room-a", str(n).encode())
        await bus.publish("room-a", b"after")
        stream = aiter(sub)
        got = [await anext(stream) for _ in range(5)]
    assert got[:4] == [Message(topic="room-a", payload=str(n).encode()) for n in range(4)]
    assert got[4] == Resync(topics=frozenset({"room-a"}))
    await bus.close()


@REDIS_ONLY  # in-process there is no connection to lose
async def test_a_dropped_connection_yields_resync_then_messages_again(
    opener: Opener, prefix: str
) -> None:
    bus = await opener()
    with trio.fail_after(10):
        async with bus.subscribe("room-a") as sub:
            stream = aiter(sub)
            killed = await trio.to_thread.run_sync(_kill_readers, prefix)
            assert killed == 1
            assert await anext(stream) == Resync(topics=frozenset({"room-a"}))
            while True:  # resubscribed by now? publish until a message gets through
                await bus.publish("room-a", b"back")
                with trio.move_on_after(0.2):
                    assert await anext(stream) == Message(topic="room-a", payload=b"back")
                    break


def _kill_readers(prefix: str) -> int:
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        clients = client.client_list(_type="pubsub")
        ids = [c["id"] for c in clients if c.get("name") == f"{prefix}-reader"]
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        client.close()


# lifecycle -------------------------------------------------------------------------------
async def test_ping_close_and_use_after_close(opener: Opener) -> None:
    bus = await opener()
    await bus.ping()
    async with bus.consume("chat", "w"), bus.subscribe("room-a"):
        await bus.enqueue("chat", "room-a", b"x")
    await bus.close()
    await bus.close()  # idempotent
    with pytest.raises(BusClosed):
        await bus.enqueue("chat", "room-a", b"y")
    with pytest.raises(BusClosed):
        await bus.publish("room-a", b"y")
    with pytest.raises(BusClosed):
        await bus.ping()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "memory",
        "memory://somewhere",
        "kafka://127.0.0.1:9092",
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/zero",
        "redis://127.0.0.1:6379/0?prefix=",
        "redis://127.0.0.1:6379/0?prefix=has space",
        "redis://127.0.0.1:6379/0?unknown=1",
        "redis:///0",
    ],
)
async def test_a_bad_url_is_a_clear_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="bus url"):
        await open_bus(url)


@pytest.mark.redis
async def test_redis_that_does_not_answer_is_bus_unavailable() -> None:
    with pytest.raises(BusUnavailable):
        await open_bus("redis://127.0.0.1:1/0")


@pytest.mark.redis
async def test_processes_must_agree_on_the_shard_count(prefix: str) -> None:
    url = f"{REDIS}?prefix={prefix}"
    first, second = await open_bus(url, shards=4), await open_bus(url, shards=8)
    try:
        assert isinstance(first, RedisBus)
        await first.enqueue("chat", "room-1", b"x")
        with pytest.raises(ValueError, match="shards"):
            await second.enqueue("chat", "room-1", b"x")
    finally:
        await first.close()
        await second.close()
