"""Chat fan-out: K WebSocket clients in one room, R messages/s, against a Node.js `ws` peer.

The server under test runs alone in a process pinned to core 0: either the streamscale
chat gateway (messages injected in-process through `ChatGateway.deliver`, the path the
chat pipeline uses) or a minimal Node `ws` broadcast server (bench/node_ws/server.js,
`ws.send` to every client). Both stamp each message with its send time and inject on a
10 ms timer. The receivers are one process pinned to core 1: raw non-blocking sockets on
epoll, no WebSocket parsing at all (a message is counted by its `"ts":` key, which works
for one message per frame and for batches alike; latency is read from ~200 probe sockets).
Prints deliveries/s, p50/p99/max publish-to-receive latency, server and client CPU, the
machine's load, and the streamscale/Node ratios; asserts nothing.

    .venv/bin/python bench/chat_fanout.py [--clients 2000,5000] [--rate 50] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node_ws"
ROOM = "bench"
TEXT_CHARS = 90  # with id, user and ts: ~150 B per message, as in DESIGN.md's measurement
PROBES = 200


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


# -- servers (child processes on core 0) ----------------------------------------------------


def serve_streamscale(port: int, rate: float, interval_ms: float, cap: float) -> None:
    import trio

    from streamscale.services.chat.fanout import ChatGateway, ChatLimits, serve_chat

    gateway = ChatGateway(limits=ChatLimits(
        batch_interval_s=interval_ms / 1000, viewer_cap_per_s=cap, max_connections=100_000))
    pad = "x" * TEXT_CHARS

    async def inject() -> None:
        start, sent = time.time(), 0
        while True:
            await trio.sleep(0.01)
            due = int((time.time() - start) * rate) - sent
            if due > 0:
                now = time.time()
                gateway.deliver(ROOM, [{"id": f"m{sent + i}", "user": "bench", "text": pad,
                                        "ts": now} for i in range(due)])
                sent += due

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_chat, gateway, host="127.0.0.1", port=port,
                                        shutdown=trio.Event()))
            print("READY", flush=True)
            nursery.start_soon(inject)

    trio.run(main)


# -- receivers (child process on core 1) ------------------------------------------------------

_TS = re.compile(rb'"ts":([0-9.]+)')


def masked_text_frame(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + mask + body


def run_clients(port: int, clients: int, warmup_s: float, seconds: float) -> None:
    """Connect, handshake and join; then count messages and sample latency for a window."""
    raise_fd_limit(clients + 100)
    hello = (b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n" % port)
    join = masked_text_frame(b'{"v":1,"type":"join","room":"%s"}' % ROOM.encode())
    ep = select.epoll()
    socks: dict[int, socket.socket] = {}
    upgraded: set[int] = set()
    pending: dict[int, bytes] = {}
    probe_every = max(1, clients // PROBES)
    probes: set[int] = set()
    for i in range(clients):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(hello + join)
        s.setblocking(False)
        fd = s.fileno()
        socks[fd], pending[fd] = s, b""
        if i % probe_every == 0:
            probes.add(fd)
        ep.register(fd, select.EPOLLIN)
        if i % 200 == 199:  # let the server catch up with the handshakes
            _pump(ep, socks, upgraded, pending, None, None, deadline=time.time() + 0.05)
    deadline = time.time() + 60
    while len(upgraded) < clients and time.time() < deadline:
        _pump(ep, socks, upgraded, pending, None, None, deadline=time.time() + 0.1)
    print(f"CONNECTED {len(upgraded)}", flush=True)
    _pump(ep, socks, upgraded, pending, None, None, deadline=time.time() + warmup_s)
    counts = [0]
    lags: list[float] = []
    cpu0, t0 = time.process_time(), time.time()
    print("MEASURING", flush=True)
    _pump(ep, socks, upgraded, pending, counts, (probes, lags), deadline=t0 + seconds)
    elapsed = time.time() - t0
    cpu = (time.process_time() - cpu0) / elapsed
    closed = clients - len(socks)
    lags.sort()
    pick = (lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000) if lags else (
        lambda q: float("nan"))
    print(json.dumps({"connected": len(upgraded), "closed": closed,
                      "deliveries_per_s": counts[0] / elapsed, "client_cpu": cpu,
                      "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0),
                      "samples": len(lags)}), flush=True)


def _pump(ep: select.epoll, socks: dict[int, socket.socket], upgraded: set[int],
          pending: dict[int, bytes], counts: list[int] | None,
          probing: tuple[set[int], list[float]] | None, *, deadline: float) -> None:
    """Read whatever arrives until `deadline`, counting `"ts":` keys. Kept lean: this one
    process reads for every client. (A key split across two reads would be missed; on
    loopback a frame written in one send arrives in one read.)"""
    probes, lags = probing if probing is not None else (set(), [])
    count = 0
    while (left := deadline - time.time()) > 0:
        for fd, _ in ep.poll(left):
            sock = socks.get(fd)
            if sock is None:
                continue
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                sock.close()
                del socks[fd]
                continue
            if fd not in upgraded:
                buf = pending[fd] + data
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    pending[fd] = buf
                    continue
                upgraded.add(fd)
                data = buf[end + 4:]
            count += data.count(b'"ts":')
            if fd in probes:
                now = time.time()
                lags.extend(now - float(ts) for ts in _TS.findall(data))
    if counts is not None:
        counts[0] += count


# -- the driver -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def ensure_node_ws() -> bool:
    if (NODE_DIR / "node_modules" / "ws").is_dir():
        return True
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        print("node/npm not found: skipping the Node peer")
        return False
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR,
                   check=True)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_one(server: str, clients: int, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    if server == "node":
        cmd = [*pin, "node", str(NODE_DIR / "server.js"), str(port), str(args.rate),
               str(TEXT_CHARS)]
    else:
        cmd = [*pin, sys.executable, __file__, "--role", "server", "--port", str(port),
               "--rate", str(args.rate), "--interval-ms", str(args.interval_ms),
               "--cap", str(args.cap)]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=_fd_limit_child)
    try:
        assert srv.stdout is not None
        if srv.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{server} server did not start")
        load = os.getloadavg()[0]
        cli = subprocess.Popen(
            [*(["taskset", "-c", "1"] if pin else []), sys.executable, __file__, "--role",
             "clients", "--port", str(port), "--clients", str(clients),
             "--warmup", str(args.warmup), "--seconds", str(args.seconds)],
            stdout=subprocess.PIPE, text=True)
        assert cli.stdout is not None
        result: dict[str, float] = {}
        for line in cli.stdout:
            if line.startswith("MEASURING"):
                srv_cpu0, busy0, t0 = cpu_seconds(srv.pid), machine_busy(), time.time()
            elif line.startswith("{"):
                elapsed = time.time() - t0
                busy1 = machine_busy()
                result = json.loads(line)
                result["server_cpu"] = (cpu_seconds(srv.pid) - srv_cpu0) / elapsed
                result["machine_busy"] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
                result["load1"] = load
        cli.wait()
        return result
    finally:
        srv.terminate()
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:  # a saturated event loop may not see SIGTERM
            srv.kill()
            srv.wait()


def _fd_limit_child() -> None:
    raise_fd_limit(20_000)


def report(name: str, k: int, rate: float, r: dict[str, float]) -> None:
    offered = k * rate
    print(f"  {name:11s} {r['deliveries_per_s']:10,.0f}/s ({r['deliveries_per_s'] / offered:5.1%}"
          f" of {offered:,.0f})  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:8.1f} ms  max "
          f"{r['max_ms']:8.1f} ms  server cpu {r['server_cpu']:4.0%}  client cpu "
          f"{r['client_cpu']:4.0%}  connected {r['connected']:.0f} closed {r['closed']:.0f}  "
          f"[load1 {r['load1']:.2f}, machine busy {r['machine_busy']:.0%}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["driver", "server", "clients"], default="driver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--clients", default="2000,5000", help="K, comma-separated")
    parser.add_argument("--rate", type=float, default=50, help="R messages/s into the room")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--interval-ms", type=float, default=50, help="batch interval")
    parser.add_argument("--cap", type=float, default=0,
                        help="per-viewer cap (msgs/s) for streamscale; 0: off, as Node has none")
    parser.add_argument("--servers", default="streamscale,node")
    args = parser.parse_args()
    if args.role == "server":
        raise_fd_limit(20_000)
        serve_streamscale(args.port, args.rate, args.interval_ms, args.cap)
        return
    if args.role == "clients":
        run_clients(args.port, int(args.clients), args.warmup, args.seconds)
        return
    raise_fd_limit(20_000)
    servers = args.servers.split(",")
    if "node" in servers and not ensure_node_ws():
        servers.remove("node")
    print(f"chat fan-out: R={args.rate:g} msgs/s into one room, {args.seconds:g} s window, "
          f"batch {args.interval_ms:g} ms, {os.cpu_count()} cores, load1 "
          f"{os.getloadavg()[0]:.2f}")
    for k in (int(v) for v in args.clients.split(",")):
        print(f"K={k} clients")
        results = {}
        for server in servers:
            results[server] = run_one(server, k, args)
            report(server, k, args.rate, results[server])
        if {"node", "streamscale"} <= results.keys():
            ours, peer = results["streamscale"], results["node"]
            ratio = ours["deliveries_per_s"] / max(1.0, peer["deliveries_per_s"])
            print(f"  ratio streamscale/node: deliveries {ratio:.2f}x, p99 "
                  f"{ours['p99_ms'] / peer['p99_ms']:.2f}x, server cpu "
                  f"{ours['server_cpu'] / max(1e-9, peer['server_cpu']):.2f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
