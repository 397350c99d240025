"""How many emulated players one core of Locust sustains while its own figures stay honest
(issue 13), beside a plain Locust HttpUser doing the same viewer's requests.

The platform (gateway, media, origin, edges, analytics) runs in this process on core 0
with ffmpeg publishing one stream (source, 360p, 160p; LL-HLS parts). For each user kind
and population N, Locust runs headless for `--seconds`, pinned to core 1
(`loadtest/bench_locustfile.py`):

- `HlsPlayer`: the load run's hls.js-like player (FastHttpUser, steering, hold-back join,
  blocking reloads, parts, ABR, metrics);
- `PlainPeer`: a plain requests-based HttpUser polling the playlist every part and
  fetching the newest part (same request rate, none of the player's logic).

Honest means the generator is not the bottleneck: its CPU under `CPU_LIMIT` of the core
and its own event loop's lag (a 100 ms sleep waking late) p99 under `LAG_P99_LIMIT_S`.
Printed per run: requests/s, generator CPU, CPU us per request, lag p99, the players'
part p50/p99 and live latency p95 (the platform's answer, which includes its own limits
on core 0); then the largest honest N of each kind. Prints; asserts nothing.

    .venv/bin/python bench/players.py [--seconds 12] [--players 25,50,100,200]
        [--kinds HlsPlayer,PlainPeer]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

# bench/sim.py would shadow the `sim` package the scenario loader lives in
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import httpx  # noqa: E402
import psutil  # noqa: E402
import trio  # noqa: E402

from loadtest.publishing import caster_stream, publish, wait_live  # noqa: E402
from loadtest.run import SERVICES, platform_config  # noqa: E402
from loadtest.settings import LoadSettings  # noqa: E402
from streamscale.testing import running_platform  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "loadtest" / "bench_locustfile.py"
CPU_LIMIT = 0.8
LAG_P99_LIMIT_S = 0.02
WARMUP_S = 3.0


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {f"{r['Type']} {r['Name']}": r for r in csv.DictReader(f)}


def _num(rows: dict[str, dict[str, str]], key: str, column: str) -> float:
    value = rows.get(key, {}).get(column, "")
    return float(value) if value not in ("", "N/A") else float("nan")


async def _one(kind: str, players: int, seconds: float, base: LoadSettings,
               out: Path) -> dict[str, float]:
    settings = LoadSettings(**{**base.__dict__, "fixed_players": players,
                               "duration_s": seconds})
    prefix = out / f"{kind}-{players}"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), kind, "--headless",
               "-u", str(players), "-r", str(max(players, 1)), "--run-time", f"{seconds:.0f}s",
               "--host", base.api_url, "--csv", str(prefix), "--only-summary",
               "--loglevel", "ERROR", "--stop-timeout", "2", "--exit-code-on-error", "0"]
    env = {**os.environ, **settings.to_env()}
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(partial(
            trio.run_process, command, env=env, check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.sched_setaffinity(proc.pid, {1})
        ps = psutil.Process(proc.pid)
        await trio.sleep(WARMUP_S)  # bench pacing: skip spawn and start-up
        cpu0, t0 = sum(ps.cpu_times()[:2]), trio.current_time()
        await trio.sleep(seconds - WARMUP_S - 1.0)
        cpu1, t1 = sum(ps.cpu_times()[:2]), trio.current_time()
    rows = _rows(Path(f"{prefix}_stats.csv"))
    requests = [r for k, r in rows.items() if not k.startswith("metric") and
                "Aggregated" not in k]
    rps = sum(float(r["Requests/s"]) for r in requests)
    cpu = (cpu1 - cpu0) / (t1 - t0)
    return {
        "rps": rps, "cpu": cpu, "us_per_request": 1e6 * cpu / rps if rps else float("nan"),
        "lag_p99_s": _num(rows, "metric generator lag", "99%") / 1000,
        "part_p50_ms": _num(rows, "GET part", "50%"),
        "part_p99_ms": _num(rows, "GET part", "99%"),
        "latency_p95_s": _num(rows, "metric live latency", "95%") / 1000,
        "failures": sum(float(r["Failure Count"]) for r in requests),
    }


async def main(seconds: float, populations: list[int], kinds: list[str]) -> None:
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory(prefix="bench-players-") as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        out.mkdir()
        async with running_platform(platform_config(data), SERVICES) as platform, \
                httpx.AsyncClient(timeout=30) as api, trio.open_nursery() as nursery:
            started = await caster_stream(api, platform.api_url)
            key, stream_id = started["stream_key"], started["stream"]["id"]
            total_s = (seconds + 8) * 2 * len(populations) + 60
            nursery.start_soon(publish, f"{platform.url('media', 'rtmp')}/{key}", total_s)
            master = await wait_live(api, platform.api_url, stream_id, 30)
            base = LoadSettings(scenario=str(REPO / "scenarios" / "baseline.toml"), scale=1e-5,
                                duration_s=seconds, api_url=platform.api_url, chat_url="",
                                rtmp_url="", stream_id=stream_id, master_url=master)
            print(f"{'kind':11} {'N':>5} {'req/s':>8} {'gen CPU':>8} {'us/req':>7} "
                  f"{'lag p99':>8} {'part p50':>9} {'part p99':>9} {'lat p95':>8} {'fail':>5}"
                  "  honest")
            best: dict[str, int] = {}
            for kind in kinds:
                for n in populations:
                    r = await _one(kind, n, seconds, base, out)
                    honest = r["cpu"] < CPU_LIMIT and r["lag_p99_s"] < LAG_P99_LIMIT_S
                    if honest:
                        best[kind] = max(best.get(kind, 0), n)
                    print(f"{kind:11} {n:5d} {r['rps']:8.0f} {r['cpu']:7.0%} "
                          f"{r['us_per_request']:7.0f} {1000 * r['lag_p99_s']:6.0f}ms "
                          f"{r['part_p50_ms']:7.0f}ms {r['part_p99_ms']:7.0f}ms "
                          f"{r['latency_p95_s']:7.2f}s {r['failures']:5.0f}  "
                          f"{'yes' if honest else 'NO'}", flush=True)
            nursery.cancel_scope.cancel()
    for kind in kinds:
        print(f"{kind}: largest honest population on one core: {best.get(kind, 0)} "
              f"(CPU < {CPU_LIMIT:.0%}, generator lag p99 < {1000 * LAG_P99_LIMIT_S:.0f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--players", default="25,50,100,200")
    parser.add_argument("--kinds", default="HlsPlayer,PlainPeer")
    args = parser.parse_args()
    trio.run(main, args.seconds, [int(n) for n in args.players.split(",")],
             args.kinds.split(","))
