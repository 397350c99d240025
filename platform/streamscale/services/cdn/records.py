"""Access records: what edges (and the origin, serving viewers directly) tell the viewer
counts, in batches sent off the hot path.

On the hot path `UsageRecorder.record` is a few dict operations per request. Every
`records_flush_s` the recorder's task swaps its table out and sends one `UsageBatch` per
stream (per session: requests, bytes, the rendition it last fetched) over the bus's work
queue `RECORDS_QUEUE`, keyed by stream id so that one consumer sees all of a stream's
batches in order. A batch the bus cannot take is counted as dropped and logged, never
retried into an unbounded backlog: viewer counts are estimates, playback comes first.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

log = logging.getLogger(__name__)

RECORDS_QUEUE = "viewer-records"
_MAX_SESSIONS_PER_BATCH = 5_000  # a bigger interval is split; keeps bus items small


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUsage:
    session: str  # viewer session id (see sessions.py)
    rendition: str  # rendition of its latest media request; "" if it only fetched the master
    requests: int
    bytes: int
    last_s: float  # unix time of its latest request


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageBatch:
    source: str  # the edge's name, or "origin"
    cdn: str  # the edge's CDN; "" for the origin
    stream_id: str
    start_s: float  # unix time the interval began
    end_s: float
    sessions: tuple[SessionUsage, ...]

    def encode(self) -> bytes:
        return json.dumps({
            "v": 1, "source": self.source, "cdn": self.cdn, "stream": self.stream_id,
            "start": self.start_s, "end": self.end_s,
            "sessions": [[s.session, s.rendition, s.requests, s.bytes, s.last_s]
                         for s in self.sessions],
        }, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> UsageBatch:
        """Parse a batch; ValueError for anything malformed."""
        try:
            doc = json.loads(data)
            if doc.get("v") != 1:
                raise ValueError(f"unknown record version {doc.get('v')!r}")
            sessions = tuple(
                SessionUsage(session=str(s), rendition=str(r), requests=int(n), bytes=int(b),
                             last_s=_finite(t))
                for s, r, n, b, t in doc["sessions"]
            )
            return cls(source=str(doc["source"]), cdn=str(doc["cdn"]),
                       stream_id=str(doc["stream"]), start_s=_finite(doc["start"]),
                       end_s=_finite(doc["end"]), sessions=sessions)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed usage batch: {exc!r}") from None


def _finite(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError("non-finite time in usage batch")
    return number


class _Session:
    __slots__ = ("bytes", "last_s", "rendition", "requests")

    def __init__(self) -> None:
        self.rendition = ""
        self.requests = 0
        self.bytes = 0
        self.last_s = 0.0


Sender = Callable[[UsageBatch], Awaitable[None]]


class UsageRecorder:
    """Collects access records for one source; `run` sends them in batches."""

    def __init__(self, source: str, cdn: str = "", *, clock: Callable[[], float] = time.time):
        self.source = source
        self.cdn = cdn
        self._clock = clock
        self._streams: dict[str, dict[str, _Session]] = {}
        self._start_s = clock()
        self.sent = 0  # batches sent
        self.dropped = 0  # batches the sender failed to take

    def record(self, stream_id: str, rendition: str, session: str, nbytes: int) -> None:
        """One answered request (hot path: no I/O, no allocation for a known session)."""
        sessions = self._streams.get(stream_id)
        if sessions is None:
            sessions = self._streams[stream_id] = {}
        entry = sessions.get(session)
        if entry is None:
            entry = sessions[session] = _Session()
        if rendition:
            entry.rendition = rendition
        entry.requests += 1
        entry.bytes += nbytes
        entry.last_s = self._clock()

    def take(self) -> list[UsageBatch]:
        """The batches recorded since the last take (one or more per stream)."""
        streams, self._streams = self._streams, {}
        start, end = self._start_s, self._clock()
        self._start_s = end
        batches = []
        for stream_id, sessions in streams.items():
            usage = [SessionUsage(session=sid, rendition=s.rendition, requests=s.requests,
                                  bytes=s.bytes, last_s=s.last_s)
                     for sid, s in sessions.items()]
            for i in range(0, len(usage), _MAX_SESSIONS_PER_BATCH):
                batches.append(UsageBatch(
                    source=self.source, cdn=self.cdn, stream_id=stream_id, start_s=start,
                    end_s=end, sessions=tuple(usage[i:i + _MAX_SESSIONS_PER_BATCH])))
        return batches

    async def run(self, send: Sender, *, interval_s: float, shutdown: trio.Event) -> None:
        """Send a batch per stream every `interval_s` until `shutdown`, then a last one
        (also when `shutdown` was set before this started)."""
        while True:
            with trio.move_on_after(interval_s):
                await shutdown.wait()
            await self._send_all(send)
            if shutdown.is_set():
                return

    async def _send_all(self, send: Sender) -> None:
        for batch in self.take():
            try:
                with trio.fail_after(5.0):
                    await send(batch)
                self.sent += 1
            except Exception as exc:  # the bus is down or slow: counts are estimates
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning("%s: %d usage batches dropped (%r)", self.source,
                                self.dropped, exc)
