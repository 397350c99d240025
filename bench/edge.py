"""The streamscale edge against nginx, in one run (issue 12):

1. requests/s and p99 for a ~1 KB LL-HLS playlist, an LL-HLS part and a 2 s ~1 MB segment
   served from the edge's cache (the edge in its own process pinned to core 0, the
   origin in another) and from nginx with one worker serving the same bytes from files
   (pinned to core 0), `wrk` pinned to core 1: bench/origin.py's method and loss checks;
   targets printed beside the ratios (playlist >= 0.3x, part >= 0.5x, segment >= 0.9x);
2. the lag of an LL-HLS player (blocking-reload loop) through the edge, and through
   nginx with the shipped edge configuration, behind one on the origin (target <= 200 ms);
3. origin requests per 1,000 viewers following the live stream through one edge (and
   through the nginx edge), counted at the origin;
4. blocking-reload fan-out: 5,000 viewers parked on one edge for the next part (the
   origin's live stream paused while they park, then resumed): p50/p99 of (arrival -
   the origin's answer time) and the origin requests it cost (target p99 100 ms, 1).

Viewers are raw epoll sockets in this process, pinned to core 1 with the origin (the
origin is idle but for misses). Prints; asserts nothing.

    .venv/bin/python bench/edge.py [--seconds 3] [--rounds 2] [--viewers 1000]
        [--fanout 5000] [--follow-s 6] [--no-install] [--no-wrk] [--nginx-edge-throughput]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _http_bench as hb
from _hls_viewers import HINT, Viewers, percentile

CONNECTIONS = {"playlist": 50, "part": 16, "segment": 8}
TARGETS = {"playlist": 0.3, "part": 0.5, "segment": 0.9}
LIVE_BASE = f"/live/{hb.LIVE}/a/"


def throughput(servers: dict[str, tuple[int, str]], objects: list[hb.Obj], wrk: str | None,
               seconds: float, rounds: int) -> None:
    problems: dict[tuple[str, str], str] = {}
    sizes: dict[tuple[str, str], int] = {}
    for kind, (_, base) in servers.items():
        for obj in objects:
            hb.probe(base + obj.path)  # fills the edge's cache
            status, body, size = hb.probe(base + obj.path)
            sizes[kind, obj.name] = size
            if (status, body) != (200, obj.body):
                problems[kind, obj.name] = f"answered {status} with {len(body)} other bytes"
    samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for _ in range(rounds):  # interleaved: a shared machine's noise hits both alike
        for obj in objects:
            for kind, (pid, base) in servers.items():
                conns = CONNECTIONS[obj.name]
                hb.measure(base + obj.path, conns, 1.0, wrk, core=1)  # warm up
                before = process_cpu_s(pid)
                run = hb.measure(base + obj.path, conns, seconds, wrk, core=1)
                cpu_us = (process_cpu_s(pid) - before) / max(1, run.requests) * 1e6
                why = hb.check_run(run, sizes[kind, obj.name])
                if why:
                    problems.setdefault((kind, obj.name), why)
                samples.setdefault((kind, obj.name), []).append((run.rps, run.p99_ms, cpu_us))
    for obj in objects:
        cells = {}
        for kind in servers:
            rps, p99, cpu = (statistics.median(c) for c in zip(*samples[kind, obj.name],
                                                                   strict=True))
            cells[kind] = rps
            print(f"  {obj.name:8} ({len(obj.body):>7} B) {kind:10} {rps:8.0f} req/s  "
                  f"p99 {p99:6.2f} ms  {cpu:6.1f} us CPU/req"
                  + (f"  [{problems[kind, obj.name]}]" if (kind, obj.name) in problems else ""))
        if "nginx" not in servers:
            continue
        for kind in [k for k in servers if k != "nginx"]:
            bad = [f"{k}: {problems[k, obj.name]}" for k in (kind, "nginx")
                   if (k, obj.name) in problems]
            if bad:
                print(f"  {obj.name:8} no {kind}/nginx ratio: {'; '.join(bad)}")
                continue
            ratio = cells[kind] / cells["nginx"]
            target = TARGETS[obj.name]
            verdict = (f"   target >= {target}x: {'met' if ratio >= target else 'NOT met'}"
                       if kind == "edge" else "")
            print(f"  {obj.name:8} {kind}/nginx {ratio:.2f}x req/s{verdict}")


def process_cpu_s(pid: int) -> float:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return hb.cpu_s(pid) + sum(hb.cpu_s(int(c)) for c in children)


def lag(origin_url: str, edges: dict[str, str], follow_s: float) -> None:
    """One player on the origin and one per edge, each part's arrival compared."""
    viewers = Viewers()
    reference = viewers.connect(origin_url, "origin", LIVE_BASE)
    players = {name: viewers.connect(url, name, LIVE_BASE) for name, url in edges.items()}
    for conn in (reference, *players.values()):
        viewers.start_player(conn)
    viewers.pump(time.time() + follow_s)
    viewers.close_all()
    for name, conn in players.items():
        lags = [(t - reference.arrivals[k]) * 1e3 for k, t in conn.arrivals.items()
                if k in reference.arrivals]
        if not lags:
            print(f"  {name:10} no parts in common with the origin's player "
                  f"(statuses {dict(viewers.statuses)})")
            continue
        worst = max(lags)
        print(f"  {name:10} {len(lags)} parts: behind the origin's player by p50 "
              f"{percentile(lags, 0.5):6.1f} ms, p99 {percentile(lags, 0.99):6.1f} ms, "
              f"max {worst:6.1f} ms   target <= 200 ms: {'met' if worst <= 200 else 'NOT met'}")


def live_requests(counts: dict[str, int]) -> dict[str, int]:
    return {t: n for t, n in counts.items() if t.startswith(LIVE_BASE)}


def per_thousand(origin_url: str, name: str, url: str, n: int, follow_s: float) -> None:
    """`n` players following the live stream through one edge; origin requests counted."""
    before = live_requests(hb.origin_counts(origin_url, edges_only=True)[0])
    viewers = Viewers()
    started = time.time()
    conns = [viewers.connect(url, name, LIVE_BASE) for _ in range(n)]
    reference = viewers.connect(origin_url, "origin", LIVE_BASE)
    connect_s = time.time() - started
    # A playlist left to expire is served stale to a herd while one request refreshes it
    # (nginx's use_stale updating): fetch it now, as steady viewing would keep it fresh.
    hb.probe(url + LIVE_BASE + "index.m3u8")
    for conn in (*conns, reference):
        viewers.start_player(conn)
    viewers.pump(time.time() + follow_s)
    viewers.close_all()
    after = live_requests(hb.origin_counts(origin_url, edges_only=True)[0])
    delta = {t: c - before.get(t, 0) for t, c in after.items() if c > before.get(t, 0)}
    requests = sum(delta.values())
    parts = sum(len(c.arrivals) for c in conns)
    lags = [(t - reference.arrivals[k]) * 1e3 for c in conns for k, t in c.arrivals.items()
            if k in reference.arrivals]
    bad = sum(v for s, v in viewers.statuses.items() if s != 200)
    print(f"  {name:10} {n} viewers, {follow_s:g} s (connected in {connect_s:.1f} s): "
          f"{parts} parts delivered, {bad} non-200 answers, {viewers.failures} lost "
          f"connections")
    if delta:
        print(f"  {name:10} origin requests: {requests} for {len(delta)} objects "
              f"({requests / len(delta):.2f} per object) = {requests * 1000 / n:.0f} "
              f"per 1,000 viewers over {follow_s:g} s (viewers made "
              f"{sum(viewers.statuses.values())} requests)")
    if lags:
        print(f"  {name:10} under this load, behind the origin's player: p50 "
              f"{percentile(lags, 0.5):.1f} ms, p99 {percentile(lags, 0.99):.1f} ms")


def fanout(origin_url: str, name: str, url: str, n: int) -> None:
    """`n` viewers parked on one blocking reload for the next part, then released."""
    viewers = Viewers()
    started = time.time()
    try:
        conns = [viewers.connect(url, name, LIVE_BASE) for _ in range(n)]
    except OSError as exc:
        print(f"  {name:10} could not open {n} connections: {exc}")
        viewers.close_all()
        return
    connect_s = time.time() - started
    hb.probe(origin_url + hb.PAUSE_PATH.decode())
    try:
        time.sleep(0.4)  # a part being made when paused is finished by now
        _, playlist, _ = hb.probe(origin_url + LIVE_BASE + "index.m3u8")
        match = HINT.search(playlist)
        assert match is not None, playlist
        target = f"{LIVE_BASE}index.m3u8?_HLS_msn={int(match[1])}&_HLS_part={int(match[2])}"
        sending = time.time()
        for conn in conns:
            viewers.once(conn, target)
        send_s = time.time() - sending
        viewers.pump(time.time() + 1.0)  # the edge reads and parks them
        early = sum(c.answer is not None for c in conns)
    finally:
        hb.probe(origin_url + hb.RESUME_PATH.decode())
    viewers.pump(time.time() + 15.0, stop_when_answered=True)
    viewers.close_all()
    direct = url == origin_url
    counts, answered = hb.origin_counts(origin_url, edges_only=not direct, first=True)
    wanted = parse_qs(target.partition("?")[2])

    def keep(query: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: v for k, v in query.items() if k.startswith("_HLS_")}

    def same(t: str) -> bool:
        path, _, query = t.partition("?")
        return path == target.partition("?")[0] and keep(parse_qs(query)) == keep(wanted)

    fetched = [t for t in counts if same(t)]
    origin_requests = sum(counts[t] for t in fetched)
    answer_t = min((answered[t] for t in fetched if t in answered), default=None)
    ok = [c.answer[1] for c in conns if c.answer is not None and c.answer[0] == 200]
    print(f"  {name:10} {n} viewers (connected in {connect_s:.1f} s, requests sent in "
          f"{send_s * 1e3:.0f} ms, {early} answered before the part existed): "
          f"{len(ok)} got 200, {origin_requests} origin request(s)")
    if answer_t is None or not ok:
        print(f"  {name:10} no spread: the origin never answered the reload")
        return
    spread = [(t - answer_t) * 1e3 for t in ok]
    p99 = percentile(spread, 0.99)
    verdict = "" if direct else (
        "   target p99 <= 100 ms and 1 origin request: "
        + ("met" if p99 <= 100 and origin_requests == 1 else "NOT met"))
    print(f"  {name:10} arrival - origin's (first) answer: p50 "
          f"{percentile(spread, 0.5):6.1f} ms, p99 {p99:6.1f} ms, max {max(spread):6.1f} ms"
          + verdict)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=5000)
    parser.add_argument("--follow-s", type=float, default=6.0)
    parser.add_argument("--no-install", action="store_true", help="never apt-get wrk")
    parser.add_argument("--no-wrk", action="store_true", help="use the python load client")
    parser.add_argument("--nginx-edge-throughput", action="store_true",
                        help="section 1 also for the shipped nginx edge (cache hits)")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4 * args.fanout + 1000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    objects = hb.static_objects()
    wrk = None if args.no_wrk else hb.find_wrk(install=not args.no_install)
    tool = "wrk (1 thread)" if wrk else "python trio client (--no-wrk, or wrk not installed)"
    print(f"load: {tool} pinned to core 1; servers pinned to core 0; origin and the viewer "
          f"sockets on core 1; {hb.machine_load()}")
    origin, origin_url = hb.start_child(1, "--serve", "origin", "--live")
    edge, edge_url = hb.start_child(0, "--serve", "edge", "--upstream", origin_url)
    nginx = hb.start_nginx_static(objects, core=0) if hb.find_nginx() else None
    nginx_edge = hb.start_nginx_edge(origin_url, core=0) if hb.find_nginx() else None
    if nginx is None:
        print("nginx is not installed (./dev test installs it): no peer, no ratios")
    try:
        servers = {"edge": (edge.pid, edge_url)}
        if nginx is not None:
            servers["nginx"] = (nginx.proc.pid, nginx.url)
        if nginx_edge is not None and args.nginx_edge_throughput:
            servers["nginx edge"] = (nginx_edge.proc.pid, nginx_edge.url)
        print(f"1. from cache: median of {args.rounds} interleaved {args.seconds:g} s runs")
        throughput(servers, objects, wrk, args.seconds, args.rounds)
        os.sched_setaffinity(0, {1})
        edges = {"edge": edge_url}
        if nginx_edge is not None:
            edges["nginx edge"] = nginx_edge.url
        print(f"2. one LL-HLS player per server, {args.follow_s:g} s, parts of 1/3 s")
        lag(origin_url, edges, args.follow_s)
        print("3. viewers following the live stream through one edge")
        for name, url in edges.items():
            per_thousand(origin_url, name, url, args.viewers, args.follow_s)
        print("4. blocking-reload fan-out (the origin alone first, moved to core 0 for it)")
        os.sched_setaffinity(origin.pid, {0})
        fanout(origin_url, "origin", origin_url, args.fanout)
        os.sched_setaffinity(origin.pid, {1})
        for name, url in edges.items():
            fanout(origin_url, name, url, args.fanout)
    finally:
        for proc in (origin, edge):
            proc.terminate()
            proc.wait()
        for server in (nginx, nginx_edge):
            if server is not None:
                server.stop()
    print(f"after the runs: {hb.machine_load()}")


if __name__ == "__main__":
    main()
