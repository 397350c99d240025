"""Benchmark the API's hot reads and login against a bare hypercorn hello-world.

    .venv/bin/python bench/api.py [--duration-s 10] [--connections 8]

Both servers run pinned to core 0, the load generator (wrk, installed with apt-get if
missing) on core 1, over loopback, in the same run. It prints requests/s and latency
percentiles for:

- bare:   a hypercorn (trio worker) ASGI app answering a fixed ~450 B JSON body
- get:    GET /api/streams/{id} through the gateway (quart-trio, SQLite read in a thread)
- login:  POST /api/users/login with the production argon2id cost (t=3, 64 MiB)

and the ratios against bare. Then it runs GET at a paced rate of half the bare server's
throughput and prints the p99 there (the issue's target: >= 0.5x bare, p99 < 20 ms at that
load). It prints; it never asserts.
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
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
SERVER_CPU, LOAD_CPU = "0", "1"


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("bench/api.py needs wrk: apt-get install wrk")
    return wrk


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"server at {url} did not come up")


@contextmanager
def server(cmd: list[str], env: dict[str, str], health_url: str) -> Iterator[None]:
    taskset = ["taskset", "-c", SERVER_CPU] if shutil.which("taskset") else []
    proc = subprocess.Popen([*taskset, *cmd], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=HERE)
    try:
        wait_http(health_url)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def post_json(url: str, body: Mapping[str, object], token: str | None = None) -> dict[str, object]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(wrk: str, url: str, *, duration_s: int, connections: int,
            script: str | None = None) -> WrkResult:
    taskset = ["taskset", "-c", LOAD_CPU] if shutil.which("taskset") else []
    cmd = [*taskset, wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script or "")
    if script:
        cmd[len(taskset) + 1:len(taskset) + 1] = ["-s", f.name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return WrkResult(rps, p50, p99, errors)


def paced(delay_ms: float) -> str:
    return f"function delay() return {delay_ms:.3f} end\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    wrk = ensure_wrk()
    d, c = args.duration_s, args.connections

    bare_port, api_port = free_port(), free_port()
    results: dict[str, WrkResult] = {}
    with server([str(VENV_BIN / "hypercorn"), "--worker-class", "trio", "--bind",
                 f"127.0.0.1:{bare_port}", "_bare_asgi:app"], dict(os.environ),
                f"http://127.0.0.1:{bare_port}/"):
        results["bare"] = run_wrk(wrk, f"http://127.0.0.1:{bare_port}/x", duration_s=d,
                                  connections=c)

    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCALE_")}
        env.update(STREAMSCALE_DATA_DIR=data_dir, STREAMSCALE_GATEWAY__PORT=str(api_port),
                   STREAMSCALE_GATEWAY__LOGIN_RATE_PER_MINUTE="100000000",
                   STREAMSCALE_GATEWAY__WRITE_RATE_PER_MINUTE="100000000",
                   STREAMSCALE_LOG_LEVEL="WARNING")
        base = f"http://127.0.0.1:{api_port}/api"
        with server([str(VENV_BIN / "streamscale"), "up", "--services", "gateway"], env,
                    f"{base}/health"):
            post_json(f"{base}/users/register", {
                "username": "bench", "email": "bench@example.com", "password": "bench pass 1"})
            login = {"login": "bench", "password": "bench pass 1"}
            token = str(post_json(f"{base}/users/login", login)["access_token"])
            started = post_json(f"{base}/streams/start",
                                {"title": "bench", "category": "bench"}, token)
            stream_id = started["stream"]["id"]  # type: ignore[index]
            get_url = f"{base}/streams/{stream_id}"
            results["get"] = run_wrk(wrk, get_url, duration_s=d, connections=c)
            body = json.dumps(login).replace('"', '\\"')
            results["login"] = run_wrk(
                wrk, f"{base}/users/login", duration_s=d, connections=c,
                script=f'wrk.method = "POST"\nwrk.body = "{body}"\n'
                       'wrk.headers["Content-Type"] = "application/json"\n')
            target_rps = results["bare"].rps / 2
            # Each of c connections waits `delay` after each response, so the rate is about
            # c / (delay + rtt); one short calibration run corrects for the real rtt.
            delay_ms = max(0.0, c * 1000 / target_rps - results["get"].p50_ms)
            probe = run_wrk(wrk, get_url, duration_s=3, connections=c, script=paced(delay_ms))
            rtt_ms = max(0.0, c * 1000 / probe.rps - delay_ms)
            delay_ms = max(0.0, c * 1000 / target_rps - rtt_ms)
            results["get@0.5x"] = run_wrk(wrk, get_url, duration_s=d, connections=c,
                                          script=paced(delay_ms))

    bare = results["bare"].rps
    print(f"\nbench/api.py  ({d} s per run, {c} connections, servers on CPU {SERVER_CPU}, "
          f"wrk on CPU {LOAD_CPU}; load {os.getloadavg()[0]:.2f})")
    print(f"{'run':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8}")
    for name, r in results.items():
        print(f"{name:10} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d} "
              f"{r.rps / bare:7.2f}x")
    get = results["get"]
    at_half = results["get@0.5x"]
    print(f"\nread path: {get.rps / bare:.2f}x bare (target >= 0.50x); "
          f"p99 at {at_half.rps:.0f} req/s (~0.5x bare) = {at_half.p99_ms:.1f} ms "
          f"(target < 20 ms)")
    print("login is bound by argon2id (t=3, 64 MiB) by design: "
          f"{results['login'].rps:.0f} logins/s on one core")


if __name__ == "__main__":
    main()
