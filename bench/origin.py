"""Origin throughput against nginx: requests/s and p99 for a ~1 KB LL-HLS playlist, an
LL-HLS part (1/3 s of a 4 Mbps rendition) and a 2 s ~1 MB segment, from streamscale's
origin and from nginx with one worker serving the same bytes from files (what a user
would pick instead). `--floor` adds a bare h11-on-trio server: a floor, not a peer.

Every server runs alone in its own process pinned to core 0; the load generator (`wrk`,
installed with apt-get when missing and allowed, else a small trio client) runs pinned
to core 1. Each server is first checked to answer 200 with the very bytes of the object,
and each run for loss (non-200s, socket errors, bytes per response): a ratio is printed
only when both sides served the same bytes without loss. Prints; asserts nothing.

    .venv/bin/python bench/origin.py [--seconds 4] [--rounds 3] [--floor] [--no-install] [--no-wrk]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import h11
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _http_bench as hb

CONNECTIONS = {"playlist": 50, "part": 16, "segment": 8}


async def serve_floor(port: int) -> None:
    """The floor: h11 on trio, one task per connection, fixed bytes, nothing else."""
    bodies = {obj.path.encode(): obj.body for obj in hb.static_objects()}

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
                    await stream.send_all((out or b"") + body)
                else:
                    await stream.send_all(out or b"")
                    await stream.send_all(body)
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:  # the client asked to close
                    return
                while conn.next_event() is not h11.PAUSED and conn.their_state is not h11.DONE:
                    pass
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.ProtocolError):
            pass

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    print("READY", f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(handle, listeners)


def process_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and its children (nginx's master and worker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return hb.cpu_s(pid) + sum(hb.cpu_s(int(c)) for c in children)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--floor", action="store_true", help="add the bare h11 floor")
    parser.add_argument("--no-install", action="store_true", help="never apt-get wrk")
    parser.add_argument("--no-wrk", action="store_true", help="use the python load client")
    args = parser.parse_args()
    if args.serve_floor:
        trio.run(serve_floor, 0)
        return

    objects = hb.static_objects()
    wrk = None if args.no_wrk else hb.find_wrk(install=not args.no_install)
    tool = "wrk (1 thread)" if wrk else "python trio client (--no-wrk, or wrk not installed)"
    print(f"load: {tool} pinned to core 1; servers pinned to core 0; median of "
          f"{args.rounds} interleaved {args.seconds:g} s runs; {hb.machine_load()}")
    servers: dict[str, tuple[int, str, object]] = {}
    origin, origin_url = hb.start_child(0, "--serve", "origin")
    servers["origin"] = (origin.pid, origin_url, origin)
    if hb.find_nginx() is None:
        print("nginx is not installed (./dev test installs it): no peer, no ratios")
    else:
        nginx = hb.start_nginx_static(objects, core=0)
        servers["nginx"] = (nginx.proc.pid, nginx.url, nginx)
    if args.floor:
        floor = subprocess.Popen([*hb.pinned(0), sys.executable, __file__, "--serve-floor"],
                                 stdout=subprocess.PIPE, text=True)
        assert floor.stdout is not None
        servers["bare h11 (floor)"] = (floor.pid, floor.stdout.readline().split()[1], floor)

    problems: dict[tuple[str, str], str] = {}
    sizes: dict[tuple[str, str], int] = {}
    for kind, (_, base, _) in servers.items():
        for obj in objects:
            status, body, size = hb.probe(base + obj.path)
            sizes[kind, obj.name] = size
            if (status, body) != (200, obj.body):
                problems[kind, obj.name] = f"answered {status} with {len(body)} other bytes"
    samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:  # interleaved rounds, median per cell: a shared machine's noise hits both alike
        for _ in range(args.rounds):
            for obj in objects:
                for kind, (pid, base, _) in servers.items():
                    conns = CONNECTIONS[obj.name]
                    hb.measure(base + obj.path, conns, 1.0, wrk, core=1)  # warm up
                    before = process_cpu_s(pid)
                    run = hb.measure(base + obj.path, conns, args.seconds, wrk, core=1)
                    cpu_us = (process_cpu_s(pid) - before) / max(1, run.requests) * 1e6
                    why = hb.check_run(run, sizes[kind, obj.name])
                    if why:
                        problems.setdefault((kind, obj.name), why)
                    samples.setdefault((kind, obj.name), []).append((run.rps, run.p99_ms, cpu_us))
    finally:
        for _, _, handle in servers.values():
            if isinstance(handle, hb.Nginx):
                handle.stop()
            elif isinstance(handle, subprocess.Popen):
                handle.terminate()
                handle.wait()
    print(f"after the runs: {hb.machine_load()}")
    print("server CPU per request is the steadier figure on a shared machine")
    for obj in objects:
        cells = []
        for kind in servers:
            rps, p99, cpu = (statistics.median(c) for c in zip(*samples[kind, obj.name],
                                                                   strict=True))
            cells.append((kind, rps, p99, cpu))
            print(f"  {obj.name:8} ({len(obj.body):>7} B) {kind:17} {rps:8.0f} req/s  "
                  f"p99 {p99:6.2f} ms  {cpu:6.1f} us CPU/req"
                  + (f"  [{problems[kind, obj.name]}]" if (kind, obj.name) in problems else ""))
        if "nginx" in servers:
            bad = [f"{k}: {problems[k, obj.name]}" for k in ("origin", "nginx")
                   if (k, obj.name) in problems]
            if bad:
                print(f"  {obj.name:8} no ratio: {'; '.join(bad)}")
            else:
                (_, o_rps, _, o_cpu), (_, n_rps, _, n_cpu) = cells[0], cells[1]
                print(f"  {obj.name:8} origin/nginx: {o_rps / n_rps:.2f}x req/s, "
                      f"{n_cpu / o_cpu:.2f}x CPU efficiency")


if __name__ == "__main__":
    main()
