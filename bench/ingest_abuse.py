"""What hostile RTMP clients cost the ingest: server RSS at idle, with one ffmpeg publish, and
with N hostile connections (default 100) each making the server buffer as much as it lets
them, while the publish goes on; and whether the publish still goes live and finishes.

Servers, one after the other in the same run (traffic to 127.0.0.1 only, from source
addresses 127.0.0.2... so the hostile clients count as several IPs):

1. streamscale with the ingest limits (the defaults);
2. the peer: the same platform with the limits set back to the old behaviour (caps of 1 GiB
   per connection and 100,000 connections; the 8 MiB message cap and 64 chunk streams that
   were always there). This peer is the *unprotected configuration*, not another product;
3. nginx-rtmp (Debian's nginx + libnginx-mod-rtmp), if installed, under the same attack
   adapted to its limits (1 MB messages, 32 chunk streams by default).

A hostile connection completes the handshake, never publishes, sets a chunk size and opens
unfinished messages on as many chunk streams as the server allows, each announcing the
largest message the server allows, filling them up to the connection's budget (less 4 KiB)
or `--attack-mib`, whichever is smaller, then holds the connection until the measurement
ends. The server process's VmRSS (/proc/<pid>/status) is sampled every 50 ms; the figure
"under attack" is the peak over the attack. Per hostile connection = (peak - RSS with the
publish alone) / N.

Usage: python bench/ingest_abuse.py [--hostile 100] [--attack-mib 8] [--ips 10] [--no-nginx]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))
sys.path.append(str(ROOT / "bench"))

from _g2g_nginx import command as nginx_command  # noqa: E402
from _g2g_nginx import find_nginx, write_config  # noqa: E402

from streamscale.protocols import rtmp  # noqa: E402
from streamscale.testing.rtmp_abuse import Flood, flood, handshake, wait_closed  # noqa: E402

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
MIB = 1024 * 1024
OLD = {"rtmp_max_buffered_bytes": 1 << 30, "rtmp_max_buffered_bytes_unpublished": 1 << 30,
       "rtmp_max_connections": 100_000, "rtmp_max_connections_per_ip": 100_000}
NGINX_MAX_MESSAGE, NGINX_FLOOD_STREAMS = 1024 * 1024, 28  # defaults: 1M, csid < 32


@dataclasses.dataclass
class Limits:
    """What the attacker knows about the server, to make it buffer as much as possible."""

    max_message: int
    max_streams: int  # chunk streams to flood from csid 4 (ours: 64 in use; nginx: csid < 32)
    budget: int | None  # bytes one unpublished connection may hold, if capped

    def plan(self, attack_bytes: int) -> Flood:
        streams = self.max_streams
        total = attack_bytes if self.budget is None else min(attack_bytes, self.budget - 4096)
        announce = min(self.max_message, 8 * MIB - 1, self.budget or 8 * MIB)
        per_stream = max(1, min(announce - 1, total // streams))
        return Flood(streams=streams, announce_bytes=announce, per_stream_bytes=per_stream)


@dataclasses.dataclass
class Result:
    name: str
    idle_mb: float = 0.0
    publish_mb: float = 0.0
    attack_mb: float = 0.0
    live: bool = False
    finished: bool = False
    admitted: int = 0
    refused: int = 0
    cut_off: int = 0  # closed by the server while flooding or holding
    sent_mb: float = 0.0
    plan: str = ""
    note: str = ""


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


async def median_rss_mb(pids: Callable[[], list[int]], seconds: float = 1.0) -> float:
    samples = []
    end = trio.current_time() + seconds
    while trio.current_time() < end:
        samples.append(rss_kb(pids()))
        await trio.sleep(0.1)
    return sorted(samples)[len(samples) // 2] / 1024


def publish_cmd(url: str, seconds: float) -> list[str]:
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url]


async def attack(result: Result, host: str, port: int, plan: Flood, args: argparse.Namespace,
                 pids: Callable[[], list[int]], baseline_mb: float) -> None:
    """N hostile connections at once, all held for `hold_s` after the last has flooded;
    the peak RSS meanwhile."""
    peak = 0
    sent_total = 0
    pending = args.hostile
    all_flooded = trio.Event()
    holds: list[trio.CancelScope] = []

    def flooded() -> None:
        nonlocal pending
        pending -= 1
        if not pending:
            all_flooded.set()

    async def one(i: int) -> None:
        nonlocal sent_total
        try:
            sock = await handshake(host, port, local_address=f"127.0.0.{2 + i % args.ips}")
        except OSError:
            sock = None
        if sock is None:
            result.refused += 1
            flooded()
            return
        result.admitted += 1
        async with sock:
            sent = await flood(sock, plan)
            sent_total += sent
            flooded()
            closed = sent < plan.total_bytes
            if not closed:
                with trio.CancelScope() as hold:
                    holds.append(hold)
                    await wait_closed(sock)  # returns if the server cuts it off
                    closed = True
            result.cut_off += closed

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_kb(pids()))
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        async with trio.open_nursery() as attackers:
            for i in range(args.hostile):
                attackers.start_soon(one, i)
            with trio.move_on_after(120):  # bounded even if the server stalls
                await all_flooded.wait()
            await trio.sleep(args.hold_s)
            for hold in holds:
                hold.cancel()
            attackers.cancel_scope.deadline = trio.current_time() + 10
        nursery.cancel_scope.cancel()
    result.attack_mb = max(peak / 1024, baseline_mb)
    result.sent_mb = sent_total / MIB


# -- servers ------------------------------------------------------------------------------

async def run_streamscale(name: str, media: dict[str, Any], args: argparse.Namespace,
                          budget: int | None) -> Result:
    result = Result(name)
    with tempfile.TemporaryDirectory(prefix="ingest-abuse-") as tmp:
        child_args = json.dumps({"data_dir": tmp, "media": media, "ladder": args.ladder})
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(partial_process(
                [sys.executable, __file__, "--serve", child_args]))
            assert proc.stdout is not None
            assert proc.stdin is not None
            line = await _read_line(proc.stdout)
            urls = json.loads(line)
            host, port = urls["rtmp"].removeprefix("rtmp://").split("/")[0].split(":")

            def pids() -> list[int]:
                return [proc.pid]

            result.idle_mb = await median_rss_mb(pids)
            async with httpx.AsyncClient(base_url=urls["api"].removesuffix("/api"),
                                         timeout=30) as api:
                await api.post("/api/users/register", json={
                    "username": "caster", "email": "c@example.com", "password": "pass word 1"})
                token = (await api.post("/api/users/login", json={
                    "login": "caster", "password": "pass word 1"})).json()["access_token"]
                body = (await api.post("/api/streams/start", headers={
                    "Authorization": f"Bearer {token}"},
                    json={"title": "bench", "category": "bench"})).json()
                stream_id, key = body["stream"]["id"], body["stream_key"]
                playlist = f"{urls['hls']}/live/{stream_id}/source/index.m3u8"

                async def is_live() -> bool:
                    status = (await api.get(f"/api/streams/{stream_id}")).json()["status"]
                    if status != "live":
                        return False
                    r = await api.get(playlist)
                    return r.status_code == 200 and "#EXTINF" in r.text

                limits = Limits(rtmp.DEFAULT_MAX_MESSAGE_SIZE, 62, budget)
                await publish_and_attack(result, f"{urls['rtmp']}/{key}", is_live, host,
                                         int(port), limits, args, pids)
            await proc.stdin.aclose()
            await proc.wait()
    return result


async def run_nginx(args: argparse.Namespace) -> Result | str:
    found = find_nginx(install=False)
    if isinstance(found, str):
        return found
    binary, module = found
    result = Result("nginx-rtmp")
    with tempfile.TemporaryDirectory(prefix="ingest-abuse-nginx-") as tmp_name:
        tmp = Path(tmp_name)
        conf, rtmp_port, http_port = write_config(tmp, module, fragment_s=1.0)
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(partial_process(
                nginx_command(binary, tmp, conf), stdout=subprocess.DEVNULL))
            with trio.fail_after(10):
                while True:
                    try:
                        probe = await trio.open_tcp_stream("127.0.0.1", rtmp_port)
                        await probe.aclose()
                        break
                    except OSError:
                        await trio.sleep(0.1)

            def pids() -> list[int]:
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                try:
                    kids = [int(p) for p in children.read_text().split()]
                except OSError:
                    kids = []
                return [proc.pid, *kids]

            result.idle_mb = await median_rss_mb(pids)
            playlist = f"http://127.0.0.1:{http_port}/hls/benchkey.m3u8"

            async def is_live() -> bool:
                async with httpx.AsyncClient() as c:
                    r = await c.get(playlist)
                return r.status_code == 200 and "#EXTINF" in r.text

            limits = Limits(NGINX_MAX_MESSAGE, NGINX_FLOOD_STREAMS, None)
            await publish_and_attack(result, f"rtmp://127.0.0.1:{rtmp_port}/live/benchkey",
                                     is_live, "127.0.0.1", rtmp_port, limits, args, pids)
            proc.terminate()
            await proc.wait()
    return result


async def publish_and_attack(result: Result, url: str, is_live: Callable[[], Any], host: str,
                             port: int, limits: Limits, args: argparse.Namespace,
                             pids: Callable[[], list[int]]) -> None:
    plan = limits.plan(args.attack_mib * MIB)
    result.plan = (f"{plan.streams} chunk streams x {plan.per_stream_bytes / 1024:.0f} KiB "
                   f"of {plan.announce_bytes / MIB:.2f} MiB messages")
    async with trio.open_nursery() as nursery:
        publisher: trio.Process = await nursery.start(partial_process(
            publish_cmd(url, args.publish_s), stderr=subprocess.DEVNULL))
        with trio.move_on_after(30):
            while not await is_live():  # noqa: ASYNC110 - polls another process over HTTP
                await trio.sleep(0.2)
            result.live = True
        result.publish_mb = await median_rss_mb(pids)
        await attack(result, host, port, plan, args, pids, result.publish_mb)
        with trio.move_on_after(args.publish_s + 30):
            await publisher.wait()
        if publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        result.finished = publisher.returncode == 0


def partial_process(cmd: list[str], **kw: Any) -> Callable[..., Any]:
    kw.setdefault("stdin", subprocess.PIPE)
    kw.setdefault("stdout", subprocess.PIPE)

    async def start(task_status: trio.TaskStatus[trio.Process]) -> None:
        await trio.run_process(cmd, check=False, task_status=task_status, **kw)

    return start


async def _read_line(stream: Any) -> str:
    buf = b""
    with trio.fail_after(60):
        while not buf.endswith(b"\n"):
            chunk = await stream.receive_some(1)
            if not chunk:
                raise RuntimeError("the platform exited before it was ready")
            buf += chunk
    return buf.decode()


# -- report -------------------------------------------------------------------------------

def report(results: list[Result], args: argparse.Namespace, skipped: str | None) -> None:
    print(f"\n{args.hostile} hostile connections from {args.ips} loopback IPs, up to "
          f"{args.attack_mib} MiB each, during an ffmpeg publish (640x360p30, ladder "
          f"'{args.ladder}' on streamscale)\n")
    print(f"{'server':<40} {'idle MB':>8} {'publish':>8} {'attack':>8} {'MB/conn':>8} "
          f"{'admitted':>8} {'cut off':>8} {'sent MB':>8}  live/finished")
    for r in results:
        per = (r.attack_mb - r.publish_mb) / args.hostile
        print(f"{r.name:<40} {r.idle_mb:8.0f} {r.publish_mb:8.0f} {r.attack_mb:8.0f} "
              f"{per:8.2f} {r.admitted:8d} {r.cut_off:8d} {r.sent_mb:8.0f}  "
              f"{'yes' if r.live else 'NO'}/{'yes' if r.finished else 'NO'}")
    for r in results:
        print(f"  {r.name}: attack = {r.plan}")
    base = next((r for r in results if r.name.startswith("streamscale (limits")), None)
    for r in results:
        if base is not None and r is not base:
            ours = max(base.attack_mb - base.publish_mb, 0.01)
            theirs = r.attack_mb - r.publish_mb
            print(f"  attack growth: {r.name} {theirs:.0f} MB vs limits on {ours:.0f} MB "
                  f"({theirs / ours:.1f}x)")
    if skipped:
        print(f"  nginx-rtmp peer skipped: {skipped}")


async def main(args: argparse.Namespace) -> None:
    results = [
        await run_streamscale("streamscale (limits on, defaults)", {}, args,
                              rtmp.DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED),
        await run_streamscale("peer: streamscale unprotected (old caps)", OLD, args, None),
    ]
    skipped = None
    if args.nginx:
        got = await run_nginx(args)
        if isinstance(got, str):
            skipped = got
        else:
            results.append(got)
    report(results, args, skipped)


# -- child: the platform ------------------------------------------------------------------

async def serve(child: dict[str, Any]) -> None:
    from streamscale.config import MediaConfig
    from streamscale.testing import make_config, running_platform

    config = make_config(Path(child["data_dir"]))
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, ladder=child["ladder"], segment_s=1.0, part_s=0.25, **child["media"]))
    async with running_platform(config, ("gateway", "media", "origin")) as platform:
        print(json.dumps({"api": platform.api_url, "rtmp": platform.url("media", "rtmp"),
                          "hls": platform.url("origin", "hls")}), flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(0))
        while await stdin.receive_some(1024):
            pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hostile", type=int, default=100)
    parser.add_argument("--attack-mib", type=int, default=8,
                        help="most bytes one hostile connection sends (bounds the peer's RSS)")
    parser.add_argument("--ips", type=int, default=10, help="loopback source addresses")
    parser.add_argument("--hold-s", type=float, default=2.0,
                        help="how long each flooded connection is held before measuring ends")
    parser.add_argument("--publish-s", type=float, default=40.0)
    parser.add_argument("--ladder", default="source")
    parser.add_argument("--no-nginx", dest="nginx", action="store_false")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.serve:
        import logging

        logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(message)s")
        trio.run(serve, json.loads(ns.serve))
    else:
        started = time.monotonic()
        trio.run(main, ns)
        print(f"  ({time.monotonic() - started:.0f} s)")
