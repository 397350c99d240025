"""Went-live notification fan-out: server CPU per delivered event, against a plain request.

    .venv/bin/python bench/notifications.py [--followers 200,1000] [--events 20]

The server under test is the gateway (in-process harness from `streamscale.testing`,
SQLite, Redis bus) in a child process pinned to core 0. The driver (core 1) signs up a
streamer and K followers through the API, opens K notification streams
(GET /api/me/notifications, httpx), then publishes E went-live events on the Redis bus as
the media node would, one every 0.2 s, and waits until every follower has every event.
It prints the server's CPU seconds per delivery (from /proc, over the event phase),
publish-to-receive latency p50/p99 and, as the peer measured in the same run on the same
server, CPU seconds per `GET /api/health` (8 concurrent clients): the ratio says what one
delivery costs in plain API requests. The box is shared with other jobs; figures move
with its load. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def pin(core: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(data_dir: Path, bus_url: str) -> None:
    import dataclasses

    import trio

    from streamscale.config import GatewayConfig
    from streamscale.testing import make_config, running_platform

    async def main() -> None:
        base = make_config(data_dir)
        config = dataclasses.replace(
            base, chat=dataclasses.replace(base.chat, bus_url=bus_url),
            gateway=GatewayConfig(port=0, login_rate_per_minute=1_000_000,
                                  write_rate_per_minute=1_000_000, shutdown_grace_s=2.0))
        async with running_platform(config, ("gateway",)) as platform:
            print(json.dumps({"api": platform.api_url}), flush=True)
            await trio.sleep_forever()

    trio.run(main)


async def drive(api_url: str, bus_url: str, pid: int, followers: int, events: int
                ) -> dict[str, Any]:
    import httpx
    import trio

    from streamscale.backends.bus import open_bus
    from streamscale.services.social import TOPIC, WentLive

    base = api_url.removesuffix("/api")
    limits = httpx.Limits(max_connections=followers + 20, max_keepalive_connections=followers)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as api:

        async def sign_up(name: str) -> tuple[dict[str, str], str]:
            r = await api.post("/api/users/register", json={
                "username": name, "email": f"{name}@example.com", "password": "pass word 1"})
            r.raise_for_status()
            r = await api.post("/api/users/login", json={"login": name,
                                                          "password": "pass word 1"})
            r.raise_for_status()
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            return auth, r.json()["user"]["id"]

        _, star_id = await sign_up("star")
        auths: list[dict[str, str]] = [{} for _ in range(followers)]
        limiter = trio.CapacityLimiter(8)

        async def fan(i: int) -> None:
            async with limiter:
                auth, _ = await sign_up(f"fan{i}")
                (await api.put(f"/api/users/{star_id}/follow", headers=auth)).raise_for_status()
                auths[i] = auth

        async with trio.open_nursery() as nursery:
            for i in range(followers):
                nursery.start_soon(fan, i)

        published: dict[str, float] = {}
        latencies: list[float] = []
        connected = trio.Semaphore(0)
        done = trio.Event()
        remaining = [followers * events]

        async def listen(auth: dict[str, str]) -> None:
            async with api.stream("GET", "/api/me/notifications", headers=auth) as response:
                lines = response.aiter_lines()
                async for line in lines:
                    if line == ": connected":
                        connected.release()
                        break
                got = 0
                async for line in lines:
                    if line.startswith("data: "):
                        title = json.loads(line[6:])["title"]
                        latencies.append(time.perf_counter() - published[title])
                        got += 1
                        remaining[0] -= 1
                        if remaining[0] == 0:
                            done.set()
                        if got == events:
                            return

        bus = await open_bus(bus_url)
        try:
            async with trio.open_nursery() as nursery:
                for auth in auths:
                    nursery.start_soon(listen, auth)
                for _ in range(followers):
                    await connected.acquire()
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                for i in range(events):
                    title = f"e{i}"
                    published[title] = time.perf_counter()
                    await bus.publish(TOPIC, WentLive(
                        stream_id=f"{i:032x}", user_id=star_id, username="star",
                        display_name="Star", title=title, category="bench",
                        started_at=datetime.now(UTC)).encode())
                    await trio.sleep(0.2)
                with trio.fail_after(120):
                    await done.wait()
                cpu_events, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
        finally:
            await bus.close()

        # the peer: plain requests on the same server
        requests = 2000
        cpu0 = cpu_seconds(pid)

        async def health(n: int) -> None:
            for _ in range(n):
                (await api.get("/api/health")).raise_for_status()

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(health, requests // 8)
        cpu_health = cpu_seconds(pid) - cpu0

    latencies.sort()
    deliveries = followers * events
    return {
        "followers": followers, "events": events, "deliveries": deliveries,
        "wall_s": wall, "cpu_per_delivery_us": cpu_events / deliveries * 1e6,
        "cpu_per_health_us": cpu_health / requests * 1e6,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
    }


def run(followers: int, events: int) -> dict[str, Any]:
    import trio

    bus_url = f"redis://127.0.0.1:6379/0?prefix=bench{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [*pin(0), sys.executable, __file__, "--serve", tmp, "--bus-url", bus_url],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            api_url = json.loads(proc.stdout.readline())["api"]
            return trio.run(drive, api_url, bus_url, proc.pid, followers, events)
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", default="200,1000")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--bus-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve), args.bus_url)
        return
    if pin(1):
        os.sched_setaffinity(0, {1})
    print("went-live fan-out (server pinned to core 0, driver on core 1; shared box)")
    for k in (int(x) for x in args.followers.split(",")):
        r = run(k, args.events)
        ratio = r["cpu_per_delivery_us"] / r["cpu_per_health_us"]
        print(f"K={k:>5} E={r['events']}: {r['cpu_per_delivery_us']:7.1f} us CPU/delivery, "
              f"GET /api/health {r['cpu_per_health_us']:7.1f} us CPU/request "
              f"(delivery = {ratio:.2f}x a request); publish->receive p50 "
              f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
