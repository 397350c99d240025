"""WebSocket readers of a drill's chat room (`"module": "chaos.chat_readers"`): viewers who
only read, what each one got and when, and one who does not read at all.

A reader speaks the chat protocol (docs/chat-protocol.md) through the `websockets`
library's sans-I/O client (`websockets.client.ClientProtocol`: handshake, framing, close
handshake, answering pings) over a trio TCP stream, so its receive times are on the
drill's clock, the same one the chat writers (`process_actions.ChatWriter`) stamp their
posts with: delivery time = batch received - the acknowledged post's request sent.

What the readers prove, against the writers' acknowledgements:
- nothing acked is lost to a reader that stayed connected: every acked message of a
  well-behaved writer posted after the reader joined reaches it, unless the gateway said
  it left messages out there (a batch's `skipped` > 0 after the room passed
  `chat.viewer_cap_per_s`: the protocol's sampling, which the reader is told about). A
  missing message counts as sampled out only if a batch with `skipped` > 0 reached the
  reader while it was due (from its post to `SAMPLED_WITHIN_S` after its ack) and the
  reader is missing no more than it was told were skipped; anything else is lost. Each
  reader also counts messages that came out of `seq` order (expected: none);
- delivery p99 of those messages to those readers is within the scenario's SLO;
- the slow reader (joins, then never reads its socket, with a small receive buffer so the
  gateway's backlog fills in seconds, not after ~100 KB) is dropped with close 1013 "too
  slow: send queue overflowed" while the others keep their delivery times.
"""

from __future__ import annotations

import json
import logging
import math
import socket
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from .ctk import provider
from .drill import current
from .process_actions import ChatWriter, _service, _writers

log = logging.getLogger(__name__)

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
RECEIVE_BYTES = 65536
SLOW_RCVBUF_BYTES = 4096  # the slow reader's SO_RCVBUF (the kernel doubles it)
SAMPLED_WITHIN_S = 2.0  # a sampled-out message's `skipped` batch comes this soon after its ack


@dataclass
class ChatReader:
    """One viewer's WebSocket in `room`; reads and records everything, unless `slow`."""

    url: str  # ws://host:port/chat
    room: str
    name: str
    slow: bool = False
    joined_at: float | None = None  # trio time the `joined` frame came
    received: dict[str, float] = field(default_factory=dict)  # message id -> trio time
    declared: list[tuple[float, int]] = field(default_factory=list)  # (when, skipped)
    out_of_order: int = 0  # messages whose seq is below one received before them
    skipped: int = 0
    batches: int = 0
    close: tuple[int, str] | None = None  # (code, reason) the server closed with
    eof: bool = False  # the TCP connection ended (with or without a close frame)
    _last_seq: int = 0
    _stream: trio.SocketStream | None = None
    _protocol: ClientProtocol | None = None
    _resume: trio.Event = field(default_factory=trio.Event)
    _done: trio.Event = field(default_factory=trio.Event)

    @property
    def connected(self) -> bool:
        return self.joined_at is not None and not self.eof and self.close is None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Connect, join, then read until the connection ends (a slow reader: only once
        `resume()` is called); started once `joined` arrived."""
        uri = parse_uri(self.url)
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        if self.slow:  # before connect, so the advertised window stays this small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF_BYTES)
        await sock.connect((uri.host, uri.port))
        stream = self._stream = trio.SocketStream(sock)
        protocol = self._protocol = ClientProtocol(uri, max_size=None)
        try:
            protocol.send_request(protocol.connect())
            await self._flush()
            await self._read_until(lambda e: isinstance(e, Response))
            protocol.send_text(json.dumps({"v": 1, "type": "join", "room": self.room}).encode())
            await self._flush()
            await self._read_until(lambda e: isinstance(e, Frame) and _frame_type(e) == "joined")
            self.joined_at = trio.current_time()
            task_status.started()
            if self.slow:
                await self._resume.wait()
            await self._read_until(lambda e: False)
        finally:
            self._done.set()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def _flush(self) -> None:
        assert self._stream is not None
        assert self._protocol is not None
        for data in self._protocol.data_to_send():
            if data:
                await self._stream.send_all(data)

    async def _read_until(self, done: Any) -> None:
        """Read and handle events until `done(event)`; returns at EOF too."""
        assert self._stream is not None
        assert self._protocol is not None
        while not self.eof:
            data = await self._stream.receive_some(RECEIVE_BYTES)
            if data:
                self._protocol.receive_data(data)
            else:
                self._protocol.receive_eof()
                self.eof = True
            found = False
            for event in self._protocol.events_received():
                if isinstance(event, Frame):
                    self._frame(event)
                found = found or done(event)
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._flush()  # pongs, the close handshake
            if found:
                return

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            close = Close.parse(frame.data)
            self.close = (close.code, close.reason)
            return
        if frame.opcode is not Opcode.TEXT:
            return
        body = json.loads(bytes(frame.data))
        if body.get("type") != "batch":
            return
        now = trio.current_time()
        self.batches += 1
        if body["skipped"]:
            self.skipped += int(body["skipped"])
            self.declared.append((now, int(body["skipped"])))
        for message in body["messages"]:
            self.received.setdefault(str(message["id"]), now)
            seq = int(message["seq"])
            self.out_of_order += seq < self._last_seq
            self._last_seq = max(seq, self._last_seq)

    def told_skipped(self, since: float, until: float) -> int:
        """Messages the gateway told this reader it left out in batches received between
        `since` and `until` (trio times)."""
        return sum(n for at, n in self.declared if since <= at <= until)

    async def resume(self, within_s: float) -> None:
        """A slow reader reads again: whatever the kernel still holds, then the close."""
        self._resume.set()
        with trio.move_on_after(within_s):
            await self._done.wait()


def _frame_type(frame: Frame) -> str | None:
    if frame.opcode is not Opcode.TEXT:
        return None
    kind = json.loads(bytes(frame.data)).get("type")
    return str(kind) if kind is not None else None


def _readers() -> list[ChatReader]:
    readers: list[ChatReader] = current().state.setdefault("chat_readers", [])
    return readers


def _chat_url(name: str) -> str:
    urls = _service(name).urls
    for label, url in urls.items():
        if url.startswith("ws") and (label == "ws" or label.endswith("ws")):
            return url
    raise RuntimeError(f"the service printed no chat WebSocket URL: {urls}")


@provider
async def start_chat_readers(count: int = 5, name: str = "api", slow: bool = False) -> int:
    """`count` viewers open the chat WebSocket and join the drill's room (anonymous: anyone
    may read); returns how many joined. `slow`: they never read after the join."""
    drill = current()
    room = drill.state.get("chat_stream_id")
    if room is None:
        raise RuntimeError("no chat room yet: start_chat_writer first")
    url = _chat_url(name)
    first = len(_readers())
    if "loop_lag_max_s" not in drill.state:
        drill.state["loop_lag_max_s"] = 0.0
        drill.nursery.start_soon(_loop_lag, drill.state)
    for i in range(int(count)):
        reader = ChatReader(url, str(room), f"{'slow' if slow else 'reader'}{first + i}",
                            slow=bool(slow))
        await drill.nursery.start(reader.run)
        _readers().append(reader)
    return int(count)


async def _loop_lag(state: dict[str, Any], tick_s: float = 0.01) -> None:
    """The drill process's own event-loop lag (how late a 10 ms sleep wakes): the readers'
    receive times are only as good as this, since the flood's writers share the loop."""
    while True:
        started = trio.current_time()
        await trio.sleep(tick_s)  # the probe itself: how late this wakes is the lag
        state["loop_lag_max_s"] = max(state["loop_lag_max_s"],
                                      trio.current_time() - started - tick_s)


def _well_behaved() -> list[ChatWriter]:
    """The writers who post within their limits (everyone but the flood and raids)."""
    return [w for w in _writers() if not w.name.startswith(("flood", "raid"))]


def _owed(reader: ChatReader) -> dict[str, float]:
    """Acked messages of well-behaved writers `reader` should get: id -> post sent time."""
    assert reader.joined_at is not None
    return {mid: sent for w in _well_behaved() for mid, sent in w.sent.items()
            if sent >= reader.joined_at and mid in w.acked}


@provider
async def acked_lost_to_readers(settle_s: float = 3.0) -> int:
    """Acked well-behaved messages that a reader who stayed connected never got and was
    not told were sampled out, summed over readers (must be 0). Waits up to `settle_s`
    for messages still on their way."""
    readers = [r for r in _readers() if not r.slow and r.joined_at is not None]
    with trio.move_on_after(settle_s):
        while any(set(_owed(r)) - r.received.keys()  # noqa: ASYNC110
                  for r in readers if r.connected):
            await trio.sleep(0.05)  # polls the readers' own records, filled as batches come
    lost = 0
    for reader in readers:
        if not reader.connected:
            lost += 1
            log.warning("reader %s was disconnected: %s", reader.name, reader.close)
            continue
        owed = _owed(reader)
        missing = set(owed) - reader.received.keys()
        # sampled out: a batch that said `skipped` came while the message was due (from
        # its post to SAMPLED_WITHIN_S after its ack), and no more went missing than the
        # gateway said it skipped
        acked = {mid: at for w in _well_behaved() for mid, at in w.acked.items()}
        sampled = {m for m in missing
                   if reader.told_skipped(owed[m], acked[m] + SAMPLED_WITHIN_S) > 0}
        gone = (missing - sampled) if len(sampled) <= reader.skipped else missing
        if gone:
            log.warning("reader %s never got %d acked messages (%d said skipped): %s",
                        reader.name, len(gone), reader.skipped, sorted(gone)[:5])
        lost += len(gone)
    return lost


def _delays(readers: list[ChatReader]) -> list[float]:
    return [r.received[mid] - sent for r in readers for mid, sent in _owed(r).items()
            if mid in r.received]


def _p99(delays: list[float]) -> float:
    if not delays:
        return math.inf
    ordered = sorted(delays)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


@provider
async def reader_delivery_p99_of_slo(scenario: str = "chat_flood") -> float:
    """p99 over (reader, acked well-behaved message) of post sent -> batch received, for
    the readers who read (the slow one excluded), as a fraction of the scenario's chat
    delivery SLO (scenarios/<scenario>.toml [slo] chat_delivery_p99_s): at most 1 meets
    it."""
    p99 = _p99(_delays([r for r in _readers() if not r.slow]))
    return round(p99 / _slo_s(scenario), 3)


def _slo_s(scenario: str) -> float:
    from sim.scenario import load_scenario

    return float(load_scenario(SCENARIOS / f"{scenario}.toml").slo.chat_delivery_p99_s)


@provider
async def readers_connected() -> int:
    """Readers (not the slow one) still connected."""
    return sum(r.connected for r in _readers() if not r.slow)


@provider
async def slow_reader_close(within_s: float = 10.0) -> str:
    """The slow reader reads again: the close it finds, "<code> <reason>" (1013 "too slow:
    send queue overflowed" if the gateway dropped it), or "still connected"."""
    slow = [r for r in _readers() if r.slow]
    if not slow:
        raise RuntimeError("no slow reader: start_chat_readers(slow=true) first")
    reader = slow[0]
    await reader.resume(within_s)
    if reader.close is not None:
        return f"{reader.close[0]} {reader.close[1]}"
    return "connection ended without a close frame" if reader.eof else "still connected"


@provider
async def chat_reader_counts(scenario: str = "chat_flood") -> dict[str, Any]:
    """What the readers got: per reader batches, messages, `skipped` the gateway declared,
    owed well-behaved messages and how many of those arrived, the close if any; the
    readers' delivery p99 (s) beside the scenario's SLO."""
    readers = [r for r in _readers() if not r.slow]
    acked = {mid: at for w in _well_behaved() for mid, at in w.acked.items()}
    sent = {mid: at for w in _well_behaved() for mid, at in w.sent.items()}
    out: dict[str, Any] = {
        "delivery_p99_s": round(_p99(_delays(readers)), 3),
        "delivery_slo_s": _slo_s(scenario),
        "deliveries": len(_delays(readers)),
        # where the time goes: the post's HTTP round trip (persisted when answered), and
        # from the answer to the batch (negative: the batch came before the answer)
        "post_answer_p99_s": round(_p99([acked[m] - sent[m] for m in acked]), 3),
        "answer_to_batch_p99_s": round(_p99([r.received[m] - acked[m] for r in readers
                                             for m in _owed(r) if m in r.received]), 3),
        "drill_loop_lag_max_s": round(current().state.get("loop_lag_max_s", 0.0), 3)}
    for r in _readers():
        owed = _owed(r) if r.joined_at is not None else {}
        out[r.name] = {"slow": r.slow, "batches": r.batches, "messages": len(r.received),
                       "skipped_declared": r.skipped, "out_of_order": r.out_of_order,
                       "owed": len(owed),
                       "owed_received": len(owed.keys() & r.received.keys()),
                       "close": list(r.close) if r.close else None}
    return out
