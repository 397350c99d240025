"""`streamscale calibrate`: measure the model's cost parameters on the platform itself.

Each figure is CPU time of the process doing the work, per operation, never wall time:
servers run in their own process pinned to core 0 (`taskset`) with the load generator
pinned to core 1, and their CPU (user + system, /proc/<pid>/stat) over a round is divided
by the operations the load generator counted; in-process work (moderation, bus publish)
runs in this process pinned to one core, timed with `time.process_time`. Each parameter
is measured over a few rounds; the table keeps every round, the median is the value.

    small_request_us   origin and edge (lean h11 listener) answering a cached ~1 KB playlist
    copy_gbytes_per_s  origin answering a 2 s ~1 MB segment: bytes per CPU-second
    api_request_us     the gateway (hypercorn + quart-trio) answering GET /api/streams/{id}
    chat_delivery_us   the platform's chat (gateway + chat, moderation on) fanning out to
                       K readers: server CPU per delivered message copy
    bus_publish_us     Redis bus publish to one subscriber (memory bus figure in the method)
    moderate_us        ModerationEngine.check per message with the shipped toxicity model

Run through the CLI: `streamscale calibrate [--quick] [--only P,...] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from sim import calibration as cal  # before bench/ is on the path: bench/sim.py is a script

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE))
import _http_bench as hb  # noqa: E402

Measurer = Callable[[bool], cal.Measurement]
SERVER_CORE, LOAD_CORE = 0, 1


@contextmanager
def _pinned_self(core: int) -> Iterator[None]:
    """This process on one core for in-process measurements, its affinity restored after."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core} if core in before else {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wrk_rounds(pid: int, url: str, *, connections: int, seconds: float, rounds: int,
                expect_bytes: int | None) -> list[tuple[float, int, int]]:
    """(server CPU s, requests, bytes) per round of wrk (or the trio client) on `url`;
    every round must answer `expect_bytes` per response (None: as in the warm-up round)."""
    wrk = hb.find_wrk(install=False)
    warm = hb.measure(url, connections, 1, wrk, LOAD_CORE)  # caches, connections, pools
    if expect_bytes is None and warm.requests:
        expect_bytes = round(warm.bytes_read / warm.requests)
    out = []
    for _ in range(rounds):
        cpu0 = hb.cpu_s(pid)
        run = hb.measure(url, connections, seconds, wrk, LOAD_CORE)
        cpu = hb.cpu_s(pid) - cpu0
        why = hb.check_run(run, expect_bytes or 0)
        if why is not None:
            raise RuntimeError(f"{url}: not a clean run: {why}")
        out.append((cpu, run.requests, run.bytes_read))
    return out


def small_request(quick: bool) -> cal.Measurement:
    """The origin's figure (the model charges small_request_us at the origin; edges have
    their own edge_requests_per_s); the edge's, measured the same way, is in the method."""
    seconds, rounds = (2.0, 2) if quick else (4.0, 3)
    playlist = next(o for o in hb.static_objects() if o.name == "playlist")
    origin, origin_url = hb.start_child(SERVER_CORE, "--serve", "origin")
    samples: list[float] = []
    edge_us: list[float] = []
    ops = 0
    try:
        size = hb.probe(origin_url + playlist.path)[2]
        for cpu, n, _ in _wrk_rounds(origin.pid, origin_url + playlist.path, connections=50,
                                     seconds=seconds, rounds=rounds, expect_bytes=size):
            samples.append(cpu / n * 1e6)
            ops += n
        edge, edge_url = hb.start_child(SERVER_CORE, "--serve", "edge", "--upstream", origin_url)
        try:
            size = hb.probe(edge_url + playlist.path)[2]
            for cpu, n, _ in _wrk_rounds(edge.pid, edge_url + playlist.path, connections=50,
                                         seconds=seconds, rounds=rounds, expect_bytes=size):
                edge_us.append(cpu / n * 1e6)
        finally:
            _stop(edge)
    finally:
        _stop(origin)
    return cal.measurement(
        "small_request_us", samples, operations=ops,
        method=f"origin (its own process on core {SERVER_CORE}, the real routes) answering a "
               f"cached {len(playlist.body)} B LL-HLS playlist to wrk (50 keep-alive "
               f"connections, core {LOAD_CORE}); server CPU (/proc stat) / requests; {rounds} "
               f"rounds of {seconds:g} s. The edge in front of it, same method: "
               f"{', '.join(f'{x:.1f}' for x in edge_us)} us/request")


def copy(quick: bool) -> cal.Measurement:
    seconds, rounds = (2.0, 2) if quick else (4.0, 3)
    segment = next(o for o in hb.static_objects() if o.name == "segment")
    origin, url = hb.start_child(SERVER_CORE, "--serve", "origin")
    samples: list[float] = []
    ops = 0
    try:
        size = hb.probe(url + segment.path)[2]
        for cpu, n, read in _wrk_rounds(origin.pid, url + segment.path, connections=8,
                                        seconds=seconds, rounds=rounds, expect_bytes=size):
            samples.append(read / cpu / 1e9)
            ops += n
    finally:
        _stop(origin)
    return cal.measurement(
        "copy_gbytes_per_s", samples, operations=ops,
        method=f"origin (own process, core {SERVER_CORE}) answering a {len(segment.body):,} B "
               f"segment to wrk (8 connections, core {LOAD_CORE}); bytes answered / server "
               f"CPU s (per-request cost included); {rounds} rounds of {seconds:g} s")


def api_request(quick: bool) -> cal.Measurement:
    import urllib.request

    seconds, rounds = (2.0, 2) if quick else (4.0, 3)
    with tempfile.TemporaryDirectory(prefix="streamscale-calibrate-") as data_dir:
        port = hb.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCALE_")}
        env.update(STREAMSCALE_DATA_DIR=data_dir, STREAMSCALE_GATEWAY__PORT=str(port),
                   STREAMSCALE_GATEWAY__LOGIN_RATE_PER_MINUTE="100000000",
                   STREAMSCALE_GATEWAY__WRITE_RATE_PER_MINUTE="100000000",
                   STREAMSCALE_LOG_LEVEL="WARNING")
        cmd = [*hb.pinned(SERVER_CORE), sys.executable, "-m", "streamscale.cli", "up",
               "--services", "gateway"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, text=True,
                                stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}/api"
        samples: list[float] = []
        ops = 0
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the gateway did not start") from None
                    time.sleep(0.1)

            def post(path: str, body: dict[str, str], token: str = "") -> dict[str, object]:
                req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json",
                                                      **({"Authorization": f"Bearer {token}"}
                                                         if token else {})})
                with urllib.request.urlopen(req, timeout=30) as r:
                    data: dict[str, object] = json.loads(r.read())
                    return data

            post("/users/register", {"username": "calib", "email": "calib@example.com",
                                     "password": "calib pass 1"})
            token = str(post("/users/login", {"login": "calib",
                                              "password": "calib pass 1"})["access_token"])
            stream = post("/streams/start", {"title": "calibrate", "category": "bench"}, token)
            url = f"{base}/streams/{stream['stream']['id']}"  # type: ignore[index]
            for cpu, n, _ in _wrk_rounds(proc.pid, url, connections=8, seconds=seconds,
                                         rounds=rounds, expect_bytes=None):
                samples.append(cpu / n * 1e6)
                ops += n
        finally:
            _stop(proc)
    return cal.measurement(
        "api_request_us", samples, operations=ops,
        method=f"`streamscale up --services gateway` (own process, core {SERVER_CORE}, SQLite) "
               f"answering GET /api/streams/{{id}} to wrk (8 connections, core {LOAD_CORE}); "
               f"server CPU / requests; {rounds} rounds of {seconds:g} s")


def _chat_run(readers: int, rate: float, seconds: float) -> tuple[float, int]:
    """(server CPU s from the first post to the load's result, deliveries counted) for one
    run of the platform's chat with `readers` in one room and `rate` msgs/s posted."""
    import chat_fanout as cf

    with tempfile.TemporaryDirectory(prefix="streamscale-calibrate-chat-") as tmp:
        srv = subprocess.Popen([*cf.pin(SERVER_CORE), sys.executable, cf.__file__, "--role",
                                "server", "--data-dir", tmp], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True,
                               preexec_fn=cf._fd_limit_child)
        try:
            assert srv.stdout is not None
            urls = json.loads(srv.stdout.readline())
            host, port = urls["ws"].split("//")[1].split("/")[0].split(":")
            posters = max(1, int(rate / cf.POSTS_PER_USER_PER_S) + 1)
            room, tokens = cf.sign_up(urls["api"], posters)
            spec = Path(tmp) / "spec.json"
            spec.write_text(json.dumps({
                "host": host, "port": int(port), "room": room, "readers": readers,
                "tokens": tokens, "rate_per_s": rate, "seconds": seconds, "drain_s": 3}))
            load = subprocess.Popen([*cf.pin(LOAD_CORE), sys.executable, cf.__file__,
                                     "--role", "load", "--spec", str(spec)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True)
            assert load.stdout is not None
            cpu0 = cpu = 0.0
            result: dict[str, float] = {}
            for line in load.stdout:
                if line.startswith("POSTING"):
                    cpu0 = hb.cpu_s(srv.pid)
                elif line.startswith("{"):
                    cpu = hb.cpu_s(srv.pid) - cpu0
                    result = json.loads(line)
            load.wait()
        finally:
            _stop(srv)
    if not result or not result["deliveries"] or result["lost"]:
        raise RuntimeError(f"chat calibration: not a clean run: {result or 'no result'}")
    return cpu, int(result["deliveries"])


def chat_delivery(quick: bool) -> cal.Measurement:
    """The marginal cost of one more reader: runs at two room sizes, the same posts, and
    (CPU_big - CPU_small) / (deliveries_big - deliveries_small) per pair of runs, so the
    per-message work (moderation, persistence, bus, encoding) and the idle cost cancel."""
    # 10 msgs/s paced 100 ms apart, over the gateway's 50 ms batch interval: each frame
    # carries one message, so a delivery is one frame written to one reader.
    small, big, rate = (300, 1200, 10.0) if quick else (500, 2000, 10.0)
    seconds, rounds = (3.0, 1) if quick else (5.0, 2)
    samples: list[float] = []
    ops = 0
    for _ in range(rounds):
        cpu_small, n_small = _chat_run(small, rate, seconds)
        cpu_big, n_big = _chat_run(big, rate, seconds)
        if n_big <= n_small or cpu_big <= cpu_small:
            raise RuntimeError(f"chat calibration: {big} readers cost no more than {small} "
                               f"({cpu_big:.2f} vs {cpu_small:.2f} CPU s)")
        samples.append((cpu_big - cpu_small) / (n_big - n_small) * 1e6)
        ops += n_small + n_big
    return cal.measurement(
        "chat_delivery_us", samples, operations=ops,
        method=f"platform gateway + chat (own process, core {SERVER_CORE}; moderation on, "
               f"SQLite, memory bus), one room, {rate:g} msgs/s posted evenly for "
               f"{seconds:g} s by bench/_chat_load.py (core {LOAD_CORE}): 100 ms apart, over "
               f"the 50 ms batch interval, so one message per frame; server CPU from first "
               f"post to last delivery, marginal per delivery between {small} and {big} "
               f"readers (per-message and idle costs cancel); {rounds} pair(s) of runs")


async def _publish_cost(url: str, messages: int) -> float:
    """CPU (publisher + subscriber, this process) per message over `messages` publishes;
    the first message, a warm-up, is waited for so the subscription is live."""
    from streamscale.backends.bus import open_bus

    bus = await open_bus(url)
    payload = b"x" * 150
    got = 0
    arrived = [trio.Event(), trio.Event()]  # the warm-up, then all of them
    try:
        async with bus.subscribe("calibrate") as sub, trio.open_nursery() as nursery:

            async def read() -> None:
                nonlocal got
                async for _ in sub:
                    got += 1
                    if got == 1:
                        arrived[0].set()
                    if got > messages:
                        arrived[1].set()
                        return

            nursery.start_soon(read)
            with trio.move_on_after(10):
                while not arrived[0].is_set():  # a subscription may go live after a publish
                    await bus.publish("calibrate", b"warm-up")
                    with trio.move_on_after(0.05):
                        await arrived[0].wait()
            got = 1
            t0 = time.process_time()
            for _ in range(messages):
                await bus.publish("calibrate", payload)
            with trio.move_on_after(30):
                await arrived[1].wait()
            cpu = time.process_time() - t0
            nursery.cancel_scope.cancel()
    finally:
        await bus.close()
    if got <= messages:
        raise RuntimeError(f"{url}: {got - 1} of {messages} published messages arrived")
    return cpu / messages * 1e6


def bus_publish(quick: bool) -> cal.Measurement:
    messages, rounds = (500, 2) if quick else (3000, 3)
    redis_url = os.environ.get("STREAMSCALE_CALIBRATE_REDIS", "redis://127.0.0.1:6379/0")
    with _pinned_self(SERVER_CORE):
        memory = [trio.run(_publish_cost, "memory://", messages) for _ in range(rounds)]
        samples = [trio.run(_publish_cost, redis_url, messages) for _ in range(rounds)]
    return cal.measurement(
        "bus_publish_us", samples, operations=messages * rounds,
        method=f"Redis bus ({redis_url.split('@')[-1]}) publish of 150 B to one subscriber "
               f"in the same process (pinned to core {SERVER_CORE}), publisher + subscriber "
               f"CPU (time.process_time) / messages; redis-server's own CPU not included; "
               f"{rounds} rounds of {messages}. Memory bus in the same run: "
               f"{sorted(memory)[len(memory) // 2]:.1f} us/message")


def moderate(quick: bool) -> cal.Measurement:
    from streamscale.services.chat.moderation import MessageContext, ModerationEngine
    from streamscale.services.chat.moderation.shipped_model import ProfanityCheckModel

    messages, rounds = (300, 2) if quick else (3000, 3)
    model = ProfanityCheckModel()
    model.load()
    texts = ["what a play, did you see that?", "gg everyone, see you tomorrow",
             "this stream is so laggy today lol", "check out my channel www.example.com",
             "you are all idiots", "POG POG POG", "anyone know the song name?",
             "first time here, love the vibe"]
    samples: list[float] = []
    with _pinned_self(SERVER_CORE):
        for r in range(rounds):
            engine = ModerationEngine(clock=time.time, toxicity=model)
            engine.open_channel("c", "owner")
            ctxs = [MessageContext("c", f"u{i}", f"{texts[i % len(texts)]} {r}.{i}")
                    for i in range(messages)]
            t0 = time.process_time()
            for ctx in ctxs:
                engine.check(ctx)
            samples.append((time.process_time() - t0) / messages * 1e6)
    return cal.measurement(
        "moderate_us", samples, operations=messages * rounds,
        method=f"ModerationEngine.check one message at a time (default rules + the shipped "
               f"toxicity model, fast path: {model.uses_fast_path}) in this process pinned to "
               f"core {SERVER_CORE}; time.process_time / messages; {rounds} rounds of "
               f"{messages} chat-like texts, one user each")


MEASURERS: dict[str, Measurer] = {
    "moderate_us": moderate, "bus_publish_us": bus_publish, "small_request_us": small_request,
    "copy_gbytes_per_s": copy, "api_request_us": api_request, "chat_delivery_us": chat_delivery,
}


def calibrate(names: list[str], *, quick: bool, command: str = ""
              ) -> tuple[cal.CostTable, list[str]]:
    """The table of what could be measured, and the parameters that could not (each said
    on stderr with its reason: a missing Redis, a server that did not start, a lossy run)."""
    out = {}
    failed = []
    for name in names:
        t0 = time.monotonic()
        try:
            m = MEASURERS[name](quick)
        except Exception as exc:  # one parameter's failure must not lose the others
            print(f"{name:18s} not measured: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)
            failed.append(name)
            continue
        print(f"{name:18s} {m.value:9.4g} {m.unit:14s} spread {m.spread:5.1%} over "
              f"{len(m.samples)} rounds ({time.monotonic() - t0:.0f} s)", flush=True)
        out[name] = m
    return cal.CostTable(machine=cal.Machine.here(), measurements=out, command=command), failed


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="streamscale calibrate",
                                 description="Measure the model's costs on this machine.")
    ap.add_argument("--quick", action="store_true", help="short rounds (about a minute)")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(MEASURERS)}")
    ap.add_argument("--out", type=Path, default=cal.DEFAULT_OUT,
                    help=f"the cost table to write (default {cal.DEFAULT_OUT})")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(MEASURERS)
    unknown = [n for n in names if n not in MEASURERS]
    if unknown:
        print(f"streamscale calibrate: unknown parameter {unknown[0]!r}; one of "
              f"{', '.join(MEASURERS)}", file=sys.stderr)
        return 2
    print(f"calibrating on {cal.Machine.here().cpu_model} ({os.cpu_count()} cores), "
          f"{hb.machine_load()}", flush=True)
    table, failed = calibrate(names, quick=args.quick,
                              command="streamscale calibrate " + " ".join(argv))
    if not table.measurements:
        print("streamscale calibrate: nothing measured; no table written", file=sys.stderr)
        return 1
    if args.out.exists() and (args.only or failed):  # keep the parameters not re-measured
        try:
            table = cal.load(args.out).merged(table)
        except cal.CalibrationError as exc:
            print(f"streamscale calibrate: {exc}; use another --out", file=sys.stderr)
            return 2
    cal.save(table, args.out)
    print(f"cost table: {args.out}" + (f" (not measured: {', '.join(failed)})" if failed
                                        else ""))
    return 1 if failed else 0
