"""Viewer counts per live stream from access records (`UsageBatch`), in bounded memory.

One task owns a `ViewerCounts` (the analytics worker's): the bus gives each consumer whole
shards of `RECORDS_QUEUE`, so all of a stream's batches, from every edge and the origin,
reach one owner in order per source.

Per stream it keeps the live sessions: session id -> first and last seen, latest
rendition, bytes, requests. Times are the sources' unix times of each session's latest
request, so a count does not depend on how late a batch arrives.

- concurrent: sessions whose latest request is within `idle_s` of now. A session seen on
  two edges is one entry (its latest request wins), so it counts once.
- unique: distinct sessions since the stream's first record here (`UniqueSessions`:
  exact to 2,048, then HyperLogLog, +-0.81 % standard error).
- by rendition: concurrent sessions by the rendition of their latest media request;
  sessions that fetched only the master playlist count in `concurrent` alone.
- bytes: served to viewers in the interval.
- watch_s: viewer-seconds in the interval. Each sighting adds the time since the
  session's previous one, capped at `idle_s` (a longer gap is a new visit and adds
  nothing), so a visit counts from its first request to its last: short by at most one
  request interval per visit. The cap is `idle_s`, not the flush interval, because
  players fetch every segment duration, less often than sources flush records.

Sessions idle past `idle_s` leave at the next `sample`, so memory follows the audience.
A stream with no live sessions left gets one last zero sample, then none until records
come again; its state (the unique count) is dropped after `keep_idle_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..cdn.records import UsageBatch
from .unique import UniqueSessions


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One stream's counts as of `at_s` (unix time); bytes and watch_s over `interval_s`."""

    stream_id: str
    at_s: float
    interval_s: float
    concurrent: int
    unique_viewers: int
    by_rendition: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    watch_s: float = 0.0
    final: bool = False  # nobody left: the last sample until records come again


class _Session:
    __slots__ = ("bytes", "first_s", "last_s", "rendition", "requests")

    def __init__(self, seen_s: float) -> None:
        self.first_s = seen_s
        self.last_s = seen_s
        self.rendition = ""
        self.bytes = 0
        self.requests = 0


class _Stream:
    __slots__ = ("bytes", "idle_since_s", "last_sample_s", "sessions", "unique", "watch_s")

    def __init__(self, now_s: float) -> None:
        self.sessions: dict[str, _Session] = {}
        self.unique = UniqueSessions()
        self.bytes = 0
        self.watch_s = 0.0
        self.last_sample_s = now_s
        self.idle_since_s: float | None = None  # set once its final zero sample is out


class ViewerCounts:
    """Per-stream viewer sessions; `apply` batches, `sample` every viewer_sample_s."""

    def __init__(self, *, idle_s: float, keep_idle_s: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not idle_s > 0:
            raise ValueError("idle_s must be positive")
        self.idle_s = idle_s
        self.keep_idle_s = keep_idle_s
        self._clock = clock
        self._streams: dict[str, _Stream] = {}

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._streams

    def streams(self) -> Iterator[str]:
        return iter(list(self._streams))

    def sessions(self, stream_id: str) -> int:
        """Sessions held for the stream (live ones, plus idle ones until the next sample)."""
        stream = self._streams.get(stream_id)
        return 0 if stream is None else len(stream.sessions)

    def apply(self, batch: UsageBatch) -> None:
        now = self._clock()
        stream = self._streams.get(batch.stream_id)
        if stream is None:
            stream = self._streams[batch.stream_id] = _Stream(now)
        stream.idle_since_s = None
        horizon = now - self.idle_s
        sessions = stream.sessions
        for usage in batch.sessions:
            stream.bytes += usage.bytes
            entry = sessions.get(usage.session)
            if entry is None:
                stream.unique.add(usage.session)
                if usage.last_s < horizon:
                    continue  # a late record of a visit already over: not watching now
                entry = sessions[usage.session] = _Session(usage.last_s)
                entry.rendition = usage.rendition
            else:
                gap_s = usage.last_s - entry.last_s
                if gap_s > 0:  # newer than what other sources said: this one is current
                    if gap_s <= self.idle_s:
                        stream.watch_s += gap_s
                    else:
                        entry.first_s = usage.last_s  # a new visit
                    entry.last_s = usage.last_s
                    if usage.rendition:
                        entry.rendition = usage.rendition
                elif usage.rendition and not entry.rendition:
                    entry.rendition = usage.rendition
            entry.bytes += usage.bytes
            entry.requests += usage.requests

    def forget(self, stream_id: str) -> None:
        """Drop a stream's state (it ended, or another worker owns it now)."""
        self._streams.pop(stream_id, None)

    def sample(self) -> list[Snapshot]:
        """Sweep idle sessions and return a snapshot of each stream still being watched
        (plus one final zero snapshot for each that has just emptied)."""
        now = self._clock()
        horizon = now - self.idle_s
        out = []
        for stream_id, stream in list(self._streams.items()):
            if stream.idle_since_s is not None:
                if now - stream.idle_since_s >= self.keep_idle_s:
                    del self._streams[stream_id]
                continue
            sessions = stream.sessions
            by_rendition: dict[str, int] = {}
            for sid in [sid for sid, s in sessions.items() if s.last_s < horizon]:
                del sessions[sid]
            for entry in sessions.values():
                if entry.rendition:
                    by_rendition[entry.rendition] = by_rendition.get(entry.rendition, 0) + 1
            final = not sessions
            out.append(Snapshot(
                stream_id=stream_id, at_s=now, interval_s=max(0.0, now - stream.last_sample_s),
                concurrent=len(sessions), unique_viewers=stream.unique.count(),
                by_rendition=by_rendition, bytes=stream.bytes, watch_s=stream.watch_s,
                final=final,
            ))
            stream.bytes = 0
            stream.watch_s = 0.0
            stream.last_sample_s = now
            if final:
                stream.idle_since_s = now
        return out
