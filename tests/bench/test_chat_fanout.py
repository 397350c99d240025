"""bench/chat_fanout.py at small counts: the frame reader, the loss accounting (a missing
message is lost unless a `skipped` count covers it) and the ratio refused when the Node
peer is short. No timing assertions."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

# Appended, not prepended: bench/sim.py must not shadow the `sim` package.
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

import chat_fanout
from _chat_load import Conn, Load, message_text, parse_frames, reader_loss, scan_frames


def server_frame(obj: dict[str, Any], opcode: int = 0x1) -> bytes:
    payload = json.dumps(obj, separators=(",", ":")).encode()
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2)
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8)
    return head + payload


def batch(numbers: list[int], skipped: int = 0) -> bytes:
    return server_frame({"v": 1, "type": "batch", "room": "r", "skipped": skipped, "messages": [
        {"id": f"m{n}", "text": message_text(n, 1.0)} for n in numbers]})


def test_frames_of_every_length_come_apart_across_split_reads() -> None:
    frames = [server_frame({"v": 1, "type": "joined"}), batch(list(range(3))),
              batch(list(range(900))), server_frame({"x": "y" * 70_000}),
              server_frame({"v": 1, "type": "ack", "id": "c1", "status": "visible"})]
    stream = b"".join(frames)
    for cut in (1, 2, 3, 50, 125, len(frames[0]) + 1, len(stream) - 1):
        buf = bytearray(stream[:cut])
        got = parse_frames(buf)
        buf += stream[cut:]
        got += parse_frames(buf)
        assert not buf
        assert [json.loads(p) for _, p in got] == [json.loads(f[f.index(b"{"):]) for f in frames]
    # The bulk scan hands back everything but batches.
    end, others = scan_frames(bytearray(stream))
    assert end == len(stream) and len(others) == 3


def test_loss_is_what_neither_arrived_nor_was_reported_skipped() -> None:
    load = Load(host="127.0.0.1", port=1, room="r", readers=1, tokens=[], rate_per_s=1,
                seconds=1)
    visible = {str(n).encode() for n in range(10)}
    with socket.socket() as sock:  # never connected: the bytes are fed by hand
        conn = Conn(sock, poster=False, token=None, probe=True)
    load.on_batches(conn, batch([0, 1, 2]) + batch([2, 3], skipped=0))
    assert load.deliveries == 4 and load.duplicates == 1 and len(load.lags) == 5
    assert reader_loss(visible, conn.seen, conn.skipped) == 6
    load.on_batches(conn, batch([9], skipped=4))
    assert conn.skipped == 4
    assert reader_loss(visible, conn.seen, conn.skipped) == 1  # one of 5..8 never accounted
    load.on_batches(conn, batch([8]))
    assert reader_loss(visible, conn.seen, conn.skipped) == 0


def result(connected: int, readers: int = 10, lost: int = 0, p99_ms: float = 5.0,
           unanswered: int = 0) -> dict[str, Any]:
    return {"connected": connected, "readers": readers, "posters": 2, "lost": lost,
            "unanswered": unanswered, "closed_by_server": 0, "p99_ms": p99_ms}


def test_the_ratio_is_refused_when_the_peer_is_short_or_lossy() -> None:
    ours = {10.0: result(10), 20.0: result(10)}
    ratio, why = chat_fanout.ratio_verdict(ours, {10.0: result(10), 20.0: result(6)})
    assert ratio is None and "connected 6 of 10" in why
    ratio, why = chat_fanout.ratio_verdict(ours, {10.0: result(10, lost=3)})
    assert ratio is None and "lost 3" in why
    ratio, why = chat_fanout.ratio_verdict(ours, {10.0: result(10), 20.0: result(10, p99_ms=150)})
    assert ratio == 2.0, why
    # Behind a backlog longer than the drain wait, missing is late: that rate just fails.
    overloaded = result(10, lost=7, unanswered=3, p99_ms=9000)
    ratio, why = chat_fanout.ratio_verdict(ours, {10.0: result(10), 20.0: overloaded})
    assert ratio == 2.0 and not chat_fanout.passed(overloaded), why
    assert chat_fanout.passed(result(10)) and not chat_fanout.passed(result(10, lost=1))


def bench_args(**overrides: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"seconds": 2.0, "drain": 5.0, "node_max_clients": 0,
                                 **overrides})


def test_end_to_end_against_the_platform_accounts_for_every_acked_message() -> None:
    r = chat_fanout.run_one("streamscale", 20, 4.0, bench_args())
    assert r["connected"] == 20 and r["posters"] == 9
    assert r["posted"] == 8 and r["visible"] + r["held"] + sum(r["refused"].values()) == 8
    assert r["visible"] > 0 and r["unanswered"] == 0
    assert r["lost"] == 0 and r["duplicates"] == 0 and r["unknown"] == 0
    assert r["deliveries"] == 20 * r["visible"] - r["skipped"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_no_ratio_when_the_node_peer_did_not_connect_every_client() -> None:
    if not chat_fanout.ensure_node_ws():
        pytest.skip("the ws package could not be installed")
    short = chat_fanout.run_one("node", 20, 4.0, bench_args(node_max_clients=12))
    assert short["connected"] == 12  # the rest were cut: their reads end
    ours = {4.0: result(20, readers=20)}
    ratio, why = chat_fanout.ratio_verdict(ours, {4.0: short})
    assert ratio is None and "connected 12 of 20" in why
