"""Origin throughput: requests/s and p99 for a cached ~1 KB LL-HLS playlist and a ~1 MB
segment, against a bare h11-on-trio hello world serving the same bytes.

Each server runs alone in its own process pinned to core 0; the load generator (`wrk` if
installed, else a small trio client) runs in another process pinned to core 1. Prints
figures and the origin/peer ratio; asserts nothing.

    .venv/bin/python bench/origin.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import h11
import trio

PLAYLIST_PATH = "/live/bench/a/index.m3u8"
SEGMENT_PATH = "/live/bench/a/0.m4s"
FRAME_BYTES = 10_900  # AAC-sized frames: 94 of them fill a 2 s, ~1 MB segment


def build_presentation():  # type: ignore[no-untyped-def]
    """An audio-only rendition of synthetic frames: the packager never decodes them."""
    from streamscale.protocols.hls import AudioTrack, PackagerConfig, Presentation, Sample

    pres = Presentation(PackagerConfig(segment_target_s=2.0, part_target_s=0.5,
                                       window_segments=2))
    rendition = pres.add_rendition("a", audio=AudioTrack.from_asc(b"\x11\x90"),
                                   bandwidth_bps=4_000_000)
    payload = bytes(range(256)) * (FRAME_BYTES // 256) + b"\0" * (FRAME_BYTES % 256)
    for i in range(int(5.2 * 48_000 / 1024)):
        rendition.push_audio(Sample(payload, dts=i * 1024, wallclock_s=1.7e9 + i * 1024 / 48e3))
    return pres


# -- servers (child processes) ------------------------------------------------------------


async def serve_origin(port: int) -> None:
    from streamscale.services.origin import MediaRegistry, serve_origin

    registry = MediaRegistry()
    registry.publish("bench", build_presentation())
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(
            serve_origin, registry, None, host="127.0.0.1", port=port, shutdown=trio.Event()
        ))
        print("READY", url, flush=True)


async def serve_peer(port: int) -> None:
    """The floor: h11 on trio, one task per connection, fixed bytes, nothing else."""
    rendition = build_presentation().get("a")
    assert rendition is not None
    bodies = {PLAYLIST_PATH.encode(): rendition.media_playlist(),
              SEGMENT_PATH.encode(): rendition.segment(0)[1] or b""}

    async def handle(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                if type(event) is not h11.Request:
                    return
                body = bodies.get(event.target, b"hello")
                out = conn.send(h11.Response(status_code=200, headers=[
                    (b"content-length", b"%d" % len(body))]))
                conn.send(h11.Data(data=body))
                if len(body) < 65536:  # one write for small answers, as the origin does
                    await stream.send_all(out + body)
                else:
                    await stream.send_all(out)
                    await stream.send_all(body)
                conn.send(h11.EndOfMessage())
                while conn.next_event() is not h11.PAUSED and conn.their_state is not h11.DONE:
                    pass
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.ProtocolError):
            pass

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    print("READY", f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(handle, listeners)


# -- fallback load generator (child process) ---------------------------------------------


async def load(url: str, connections: int, seconds: float) -> None:
    host, port = url.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        stream = await trio.open_tcp_stream(host, int(port))
        buf = b""
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await stream.send_all(request)
            while b"\r\n\r\n" not in buf:
                buf += await stream.receive_some(1 << 20)
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            while len(buf) < length:
                buf += await stream.receive_some(1 << 20)
            buf = buf[length:]
            latencies.append(time.perf_counter() - start)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    print(f"Requests/sec: {len(latencies) / seconds:.1f}\n     99%  {p99 * 1e3:.2f}ms")


# -- driver ------------------------------------------------------------------------------


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and os.cpu_count() else []


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, connections: int, seconds: float) -> tuple[float, float]:
    if shutil.which("wrk"):
        cmd = [*pinned(1), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--latency", url]
    else:
        cmd = [*pinned(1), sys.executable, __file__, "--load", url,
               "--connections", str(connections), "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_server(kind: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "platform")}
    proc = subprocess.Popen([*pinned(0), sys.executable, __file__, "--serve", kind],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        raise RuntimeError(f"{kind} server did not start")
    return proc, line[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["origin", "peer"])
    parser.add_argument("--load")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve_origin if args.serve == "origin" else serve_peer, 0)
        return
    if args.load:
        trio.run(load, args.load, args.connections, args.seconds)
        return

    rendition = build_presentation().get("a")
    assert rendition is not None
    sizes = {"playlist": len(rendition.media_playlist()),
             "segment": len(rendition.segment(0)[1] or b"")}
    tool = "wrk" if shutil.which("wrk") else "python client"
    print(f"load: {tool}; servers pinned to core 0, load to core 1; "
          f"median of {args.rounds} interleaved {args.seconds:.0f} s runs")
    samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    servers = {kind: run_server(kind) for kind in ("origin", "peer")}
    try:  # interleaved rounds, median per cell: a shared machine's noise hits both alike
        for _ in range(args.rounds):
            for what, path, conns in (("playlist", PLAYLIST_PATH, 50),
                                      ("segment", SEGMENT_PATH, 8)):
                for kind, (proc, base) in servers.items():
                    measure(base + path, conns, 1.0)  # warm up
                    before = cpu_s(proc.pid)
                    rps, p99 = measure(base + path, conns, args.seconds)
                    cpu_us = (cpu_s(proc.pid) - before) / (rps * args.seconds) * 1e6
                    samples.setdefault((kind, what), []).append((rps, p99, cpu_us))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
    results = {key: tuple(statistics.median(column) for column in zip(*runs, strict=True))
               for key, runs in samples.items()}
    print("server CPU per request is the steadier figure on a shared machine")
    for what in ("playlist", "segment"):
        (o_rps, o_p99, o_cpu), (p_rps, p_p99, p_cpu) = (
            results["origin", what], results["peer", what]
        )
        print(f"{what:8} ({sizes[what]:>7} B): "
              f"origin {o_rps:7.0f} req/s p99 {o_p99:6.2f} ms {o_cpu:5.0f} us CPU/req | "
              f"bare h11 {p_rps:7.0f} req/s p99 {p_p99:6.2f} ms {p_cpu:5.0f} us CPU/req | "
              f"ratio {o_rps / p_rps:.2f}x req/s, {o_cpu / p_cpu:.2f}x CPU")


if __name__ == "__main__":
    main()
