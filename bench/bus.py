"""Bus micro-benchmark: work-queue throughput and broadcast latency, memory vs Redis.

Work queue: P producer tasks enqueue N items over many keys while W workers take batches
and ack them; items/s from the first enqueue to the last ack. The peer in the same run is
raw redis-py without the bus layer: one thread doing XADD per item (as `enqueue` does,
no pipelining) and one doing XREADGROUP COUNT 100 + XACK/XDEL, over one stream.

Broadcast: one subscriber, messages published at a fixed rate; publish-to-receive
latency p50/p99. Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/bus.py [--items 20000] [--messages 2000] [--redis redis://...]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import threading
import time
import uuid

import redis
import trio

from streamscale.backends.bus import Bus, Message, open_bus

QUEUE = "bench"


async def queue_throughput(bus: Bus, items: int, producers: int, workers: int) -> float:
    done = trio.Event()
    acked = 0

    async def produce(start: int) -> None:
        for n in range(start, items, producers):
            await bus.enqueue(QUEUE, f"room-{n % 200}", b"x" * 150)

    async def work(worker_id: str) -> None:
        nonlocal acked
        async with bus.consume(QUEUE, worker_id) as consumer:
            while True:
                batch = await consumer.receive_batch(100)
                await consumer.ack(*batch)
                acked += len(batch)
                if acked >= items:
                    done.set()

    async with trio.open_nursery() as nursery:
        for w in range(workers):
            nursery.start_soon(work, f"w{w}")
        started = time.perf_counter()
        for p in range(producers):
            nursery.start_soon(produce, p)
        await done.wait()
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return items / elapsed


async def publish_latency(bus: Bus, messages: int, rate_hz: float) -> tuple[float, float]:
    latencies: list[float] = []
    async with bus.subscribe("room-1") as sub, trio.open_nursery() as nursery:

        async def receive() -> None:
            async for message in sub:
                if isinstance(message, Message):
                    (sent,) = struct.unpack_from("d", message.payload)
                    latencies.append(time.perf_counter() - sent)
                    if len(latencies) >= messages:
                        nursery.cancel_scope.cancel()

        nursery.start_soon(receive)
        for _ in range(messages):
            await bus.publish("room-1", struct.pack("d", time.perf_counter()) + b"x" * 150)
            await trio.sleep(1 / rate_hz)
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


def raw_redis_throughput(url: str, items: int) -> float:
    """XADD one by one in one thread, XREADGROUP + XACK/XDEL in another."""
    client = redis.Redis.from_url(url)
    stream = f"bench-raw-{uuid.uuid4().hex[:8]}"
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    acked = 0

    def consume() -> None:
        nonlocal acked
        reader = redis.Redis.from_url(url)
        while acked < items:
            reply = reader.xreadgroup("g", "c", {stream: ">"}, count=100, block=1000)
            for _, entries in reply or ():
                ids = [eid for eid, _ in entries]
                pipe = reader.pipeline(transaction=False)
                pipe.xack(stream, "g", *ids)
                pipe.xdel(stream, *ids)
                pipe.execute()
                acked += len(ids)
        reader.close()

    thread = threading.Thread(target=consume)
    started = time.perf_counter()
    thread.start()
    for n in range(items):
        client.xadd(stream, {"k": f"room-{n % 200}", "p": b"x" * 150})
    thread.join()
    elapsed = time.perf_counter() - started
    client.delete(stream)
    client.close()
    return items / elapsed


def cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="publishes per second")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    prefix = f"bench-bus-{uuid.uuid4().hex[:8]}"
    rows: dict[str, dict[str, float]] = {}
    try:
        for name, url in (("memory", "memory://"), ("redis", f"{args.redis}?prefix={prefix}")):
            bus = await open_bus(url, shards=8)
            try:
                rows[name] = {"items/s": await queue_throughput(bus, args.items, 8, 2)}
                p50, p99 = await publish_latency(bus, args.messages, args.rate)
                rows[name] |= {"p50_ms": p50 * 1000, "p99_ms": p99 * 1000}
            finally:
                await bus.close()
        raw = await trio.to_thread.run_sync(raw_redis_throughput, args.redis, args.items)
    finally:
        await trio.to_thread.run_sync(cleanup, args.redis, prefix)
    print(f"work queue: {args.items} items, 8 producers, 2 workers, batches of 100")
    for name, row in rows.items():
        print(f"  {name:8} {row['items/s']:>10,.0f} items/s")
    print(f"  raw redis-py (1 XADD thread, 1 XREADGROUP thread): {raw:>10,.0f} items/s")
    print(f"  ratio redis bus / raw redis-py: {rows['redis']['items/s'] / raw:.2f}x")
    vs_memory = rows["redis"]["items/s"] / rows["memory"]["items/s"]
    print(f"  ratio redis bus / memory bus:   {vs_memory:.3f}x")
    print(f"broadcast: {args.messages} messages at {args.rate:.0f}/s, publish -> receive")
    for name, row in rows.items():
        print(f"  {name:8} p50 {row['p50_ms']:7.3f} ms   p99 {row['p99_ms']:7.3f} ms")
    print(f"  ratio redis / memory p50: {rows['redis']['p50_ms'] / rows['memory']['p50_ms']:.1f}x")


if __name__ == "__main__":
    trio.run(main)
