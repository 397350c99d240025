"""Shared by bench/origin.py and bench/edge.py: the objects (a ~1 KB LL-HLS playlist, a
part, a 2 s ~1 MB segment), the servers (streamscale's origin and edge in their own
processes, nginx with one worker serving the same bytes from files), and the load
generator (`wrk` pinned to its own core, else a small trio client) with its loss checks.

Run as a script it is one of the child processes:
    _http_bench.py --serve origin [--live] --port P      origin (+ a live stream fed in real time)
    _http_bench.py --serve edge --upstream URL --port P  streamscale edge
    _http_bench.py --load URL --connections C --seconds S
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

PLATFORM = Path(__file__).resolve().parents[1] / "platform"
sys.path.insert(0, str(PLATFORM))

STATIC = "bench"  # the static stream: built once, never changes
LIVE = "live"  # fed in real time by the origin child (--live)
FRAME_BYTES = 10_900  # AAC-sized frames at 46.9/s: a 2 s segment ~1 MB (4 Mbps)
LIVE_FRAME_BYTES = 2_000  # the live stream: ~750 kbps, 1/3 s parts ~31 KB
PART_TARGET_S = 1 / 3  # the platform's default PART-TARGET
COUNTS_PATH = b"/_bench/counts"
PAUSE_PATH = b"/_bench/pause"
RESUME_PATH = b"/_bench/resume"
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d bytes=%d duration_us=%d status_errors=%d "
    .. "socket_errors=%d p50_us=%d p99_us=%d\\n", summary.requests, summary.bytes,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# -- the objects --------------------------------------------------------------------------


def build_presentation(frame_bytes: int = FRAME_BYTES, seconds: float = 5.2):  # type: ignore[no-untyped-def]
    """An audio-only rendition `a` of synthetic frames (the packager never decodes them)."""
    from streamscale.protocols.hls import AudioTrack, PackagerConfig, Presentation, Sample

    pres = Presentation(PackagerConfig(segment_target_s=2.0, part_target_s=PART_TARGET_S,
                                       window_segments=3))
    rendition = pres.add_rendition("a", audio=AudioTrack.from_asc(b"\x11\x90"),
                                   bandwidth_bps=frame_bytes * 8 * 47)
    payload = bytes(range(256)) * (frame_bytes // 256) + b"\0" * (frame_bytes % 256)
    for i in range(int(seconds * 48_000 / 1024)):
        rendition.push_audio(Sample(payload, dts=i * 1024, wallclock_s=1.7e9 + i * 1024 / 48e3))
    return pres


@dataclass(frozen=True)
class Obj:
    name: str
    path: str
    body: bytes
    content_type: str
    cache_control: str


def static_objects() -> list[Obj]:
    """The three objects, as the origin serves them for stream `bench`."""
    rendition = build_presentation().get("a")
    assert rendition is not None
    base = f"/live/{STATIC}/a"
    mpegurl, media = "application/vnd.apple.mpegurl", "video/iso.segment"
    immutable = "public, max-age=31536000, immutable"
    return [
        Obj("playlist", f"{base}/index.m3u8", rendition.media_playlist(), mpegurl, "max-age=1"),
        Obj("part", f"{base}/1.0.m4s", rendition.part(1, 0)[1] or b"", media, immutable),
        Obj("segment", f"{base}/0.m4s", rendition.segment(0)[1] or b"", media, immutable),
    ]


# -- child processes: origin and edge -----------------------------------------------------


async def serve_origin(port: int, live: bool) -> None:
    """The origin's real routes behind a counter (GET /_bench/counts: targets seen, and
    when each was last answered, Unix seconds)."""
    from streamscale.protocols.hls import Sample
    from streamscale.services.lean_http import Head, Holds, HTTPServer, Limits, Reply, Request
    from streamscale.services.origin import MediaRegistry
    from streamscale.services.origin._routes import OriginRoutes

    registry = MediaRegistry()
    registry.publish(STATIC, build_presentation())
    inner = OriginRoutes(registry, None)
    counts: Counter[str] = Counter()
    edge_counts: Counter[str] = Counter()  # the requests an edge sent
    answered: dict[str, float] = {}
    first_answered: dict[str, float] = {}
    head = Head(200, [(b"content-type", b"application/json"), (b"cache-control", b"no-store")])

    running = trio.Event()
    running.set()

    async def counting(request: Request, holds: Holds) -> Reply:
        nonlocal running
        if request.target == COUNTS_PATH:
            return head, json.dumps({"counts": counts, "edge_counts": edge_counts,
                                     "answered": answered,
                                     "first_answered": first_answered}).encode()
        if request.target == PAUSE_PATH:  # the live stream stops until resumed
            if running.is_set():
                running = trio.Event()
            return head, b"{}"
        if request.target == RESUME_PATH:
            running.set()
            return head, b"{}"
        target = request.target.decode("latin-1")
        counts[target] += 1
        if request.header(b"x-streamscale-edge") is not None:
            edge_counts[target] += 1
        reply = await inner(request, holds)
        answered[target] = time.time()
        first_answered.setdefault(target, answered[target])
        return reply

    async def feed() -> None:
        pres = build_presentation(LIVE_FRAME_BYTES, seconds=0.0)
        registry.publish(LIVE, pres)
        rendition = pres.get("a")
        payload = b"\x21" * LIVE_FRAME_BYTES
        start = trio.current_time()
        for i in range(10**9):
            if not running.is_set():
                paused_at = trio.current_time()
                await running.wait()
                start += trio.current_time() - paused_at
            due = start + i * 1024 / 48_000
            if trio.current_time() - due > 0.05:  # starved: a live source does not burst
                start += trio.current_time() - due
            await trio.sleep_until(start + i * 1024 / 48_000)
            if rendition.push_audio(Sample(payload, dts=i * 1024, wallclock_s=time.time())):
                registry.changed(LIVE)

    server = HTTPServer(counting, Limits())
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(server.serve, host="127.0.0.1", port=port,
                                                shutdown=trio.Event()))
        if live:
            nursery.start_soon(feed)
        print("READY", f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)


async def serve_edge(port: int, upstream: str) -> None:
    from streamscale.config import EdgeConfig
    from streamscale.services.cdn.edge import serve_edge as serve

    async with trio.open_nursery() as nursery:
        edge = await nursery.start(partial(
            serve, EdgeConfig(name="bench", cdn="a", port=port, cache_mb=512),
            upstream_url=upstream, shutdown=trio.Event()))
        print("READY", edge.url, flush=True)


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 \
        else []


def start_child(core: int | None, *args: str) -> tuple[subprocess.Popen[str], str]:
    """This script as a child (`--serve ...`), pinned to `core`; (process, base URL)."""
    env = {**os.environ, "PYTHONPATH": str(PLATFORM)}
    cmd = [*(pinned(core) if core is not None else []), sys.executable, __file__, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"{' '.join(args)} did not start")
    return proc, line[1]


def origin_counts(origin_url: str, *, edges_only: bool = False, first: bool = False
                  ) -> tuple[Counter[str], dict[str, float]]:
    """(requests per target the origin saw, or only those an edge sent; when each target
    was last (or `first`) answered, Unix seconds)."""
    _, body, _ = probe(origin_url + COUNTS_PATH.decode())
    data = json.loads(body)
    return (Counter(data["edge_counts" if edges_only else "counts"]),
            data["first_answered" if first else "answered"])


# -- nginx --------------------------------------------------------------------------------

NGINX_STATIC = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    etag off;
    types {{ application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; }}
    server {{
        listen 127.0.0.1:{port} backlog=8192;
        root {prefix}/www;
        location ~ \\.m3u8$ {{
            add_header Cache-Control "max-age=1";
            add_header Access-Control-Allow-Origin *;
        }}
        location ~ \\.m4s$ {{
            add_header Cache-Control "public, max-age=31536000, immutable";
            add_header Access-Control-Allow-Origin *;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    url: str
    prefix: Path

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


def _run_nginx(prefix: Path, conf: Path, port: int, core: int | None) -> Nginx:
    """Start nginx (as nobody when root, the prefix made its own) and wait for its port."""
    from streamscale.services.cdn.nginx import UNPRIVILEGED_USER, command

    binary = find_nginx()
    assert binary is not None
    extra: dict[str, int] = {}
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam(UNPRIVILEGED_USER)
        for root, dirs, names in os.walk(prefix):
            for name in [*dirs, *names]:
                os.chown(Path(root) / name, user.pw_uid, user.pw_gid)
        os.chown(prefix, user.pw_uid, user.pw_gid)
        extra = {"user": user.pw_uid, "group": user.pw_gid}
    cmd = [*(pinned(core) if core is not None else []), *command(binary, prefix, conf)]
    cmd[cmd.index("stderr")] = str(prefix / "startup.log")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, **extra)  # type: ignore[call-overload]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Nginx(proc, f"http://127.0.0.1:{port}", prefix)
        except OSError:
            time.sleep(0.02)
    proc.kill()
    log = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
    raise RuntimeError(f"nginx did not start: {log[-500:]}")


def start_nginx_static(objects: list[Obj], core: int | None) -> Nginx:
    """nginx, one worker, serving `objects` from files with the origin's headers."""
    prefix = Path(tempfile.mkdtemp(prefix="streamscale-bench-nginx-"))
    for obj in objects:
        path = prefix / "www" / obj.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(obj.body)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_STATIC.format(prefix=prefix, port=port))
    return _run_nginx(prefix, conf, port, core)


def start_nginx_edge(origin_url: str, core: int | None) -> Nginx:
    """The shipped nginx edge configuration (one worker) in front of `origin_url`."""
    from streamscale.services.cdn.nginx import NginxEdgeSettings, render_config

    prefix = Path(tempfile.mkdtemp(prefix="streamscale-bench-nginx-edge-"))
    port = free_port()
    settings = NginxEdgeSettings(origin_url=origin_url, prefix=prefix, port=port)
    settings.cache_path.mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render_config(settings))
    return _run_nginx(prefix, conf, port, core)


# -- load ---------------------------------------------------------------------------------


def find_wrk(*, install: bool) -> str | None:
    """wrk, installed with apt-get (Debian package wrk) when missing, allowed and root."""
    found = shutil.which("wrk")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("installing wrk with apt-get ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk")


@dataclass(frozen=True)
class Run:
    rps: float
    p99_ms: float
    requests: int
    bytes_read: int
    bad_status: int  # non-200 answers (wrk: status >= 400)
    socket_errors: int


_RESULT = re.compile(r"RESULT requests=(\d+) bytes=(\d+) duration_us=(\d+) status_errors=(\d+) "
                     r"socket_errors=(\d+) p50_us=(\d+) p99_us=(\d+)")


def measure(url: str, connections: int, seconds: float, wrk: str | None, core: int) -> Run:
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(WRK_SCRIPT)
        cmd = [*pinned(core), wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "-s", script.name, url]
    else:
        cmd = [*pinned(core), sys.executable, __file__, "--load", url,
               "--connections", str(connections), "--seconds", str(seconds)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        if wrk:
            os.unlink(script.name)
    match = _RESULT.search(out)
    if match is None:
        raise RuntimeError(f"load generator said: {out[-300:]}")
    requests, read, duration_us, bad, errors, _, p99_us = (int(g) for g in match.groups())
    return Run(requests / (duration_us / 1e6), p99_us / 1e3, requests, read, bad, errors)


async def load(url: str, connections: int, seconds: float) -> None:
    """The fallback load generator: keep-alive GETs on `connections` sockets."""
    host, port = url.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    latencies: list[float] = []
    read = bad = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal read, bad
        stream = await trio.open_tcp_stream(host, int(port))
        buf = b""
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            await stream.send_all(request)
            while b"\r\n\r\n" not in buf:
                buf += await stream.receive_some(1 << 20)
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            while len(buf) < length:
                buf += await stream.receive_some(1 << 20)
            buf = buf[length:]
            read += len(head) + 4 + length
            bad += not head.startswith(b"HTTP/1.1 200")
            latencies.append(time.perf_counter() - sent)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker)
    duration = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    print(f"RESULT requests={len(latencies)} bytes={read} duration_us={int(duration * 1e6)} "
          f"status_errors={bad} socket_errors=0 p50_us=0 p99_us={int(p99 * 1e6)}")


def probe(url: str) -> tuple[int, bytes, int]:
    """One GET on a fresh connection: (status, body, response size with its head)."""
    host, port = url.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(1 << 20):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, len(data)


def check_run(run: Run, response_bytes: int) -> str | None:
    """Why `run` is not a like-for-like measurement (loss, errors, other bytes), or None."""
    if run.requests == 0:
        return "no requests completed"
    if run.bad_status or run.socket_errors:
        return f"{run.bad_status} bad statuses, {run.socket_errors} socket errors"
    per = run.bytes_read / run.requests
    if abs(per - response_bytes) > 0.02 * response_bytes + 64:
        return f"{per:.0f} bytes per response, expected ~{response_bytes}"
    return None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_load() -> str:
    try:
        one, five, _ = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return "load average unknown"
    return f"load average {one} (1 min) {five} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["origin", "edge"])
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream")
    parser.add_argument("--load")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.serve == "origin":
        trio.run(serve_origin, args.port, args.live)
    elif args.serve == "edge":
        trio.run(serve_edge, args.port, args.upstream)
    elif args.load:
        trio.run(load, args.load, args.connections, args.seconds)


if __name__ == "__main__":
    main()
