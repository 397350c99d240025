"""The live media table: stream id -> Presentation, with change notification for waiters.

The packager task is the only writer: it publishes a Presentation, pushes samples into it,
then calls `changed()` once per batch of pushes that returned events, and `end()` when the
stream stops. The origin only reads: it looks presentations up and parks blocking reloads
and preload-hinted part requests in `wait_for_change`.

Waiters park per rendition, so a new part of the 360p rung does not wake every viewer of
the 720p one, and an Event is only made when somebody waits. The interface is five calls
on plain values (a stream id, a version number), so a second origin process could later be
fed the same calls over the network instead of sharing this object.
"""

from __future__ import annotations

import logging
import re

import trio

from ...protocols.hls import Presentation

log = logging.getLogger(__name__)

STREAM_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

_ALL = ""  # waiter key for "any rendition of this stream"; rendition names are never empty


class _Stream:
    __slots__ = ("ended", "presentation", "seen", "version", "waiters")

    def __init__(self, presentation: Presentation) -> None:
        self.presentation = presentation
        self.version = 0
        self.ended = False
        self.seen: dict[str, int] = {r.name: r.version for r in presentation}
        self.waiters: dict[str, trio.Event] = {}

    def wake_all(self) -> None:
        waiters, self.waiters = self.waiters, {}
        for event in waiters.values():
            event.set()


class MediaRegistry:
    """Live presentations by stream id. One writer (the packager), many readers."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    # -- reader side (origin) ----------------------------------------------------------------

    def lookup(self, stream_id: str) -> Presentation | None:
        stream = self._streams.get(stream_id)
        return None if stream is None else stream.presentation

    def version(self, stream_id: str) -> int:
        """A number that changes whenever the stream does; -1 for an unknown stream."""
        stream = self._streams.get(stream_id)
        return -1 if stream is None else stream.version

    def is_ended(self, stream_id: str) -> bool:
        stream = self._streams.get(stream_id)
        return stream is not None and stream.ended

    def waiting(self, stream_id: str) -> int:
        """How many requests are parked on this stream (a gauge; tests sync on it)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return sum(e.statistics().tasks_waiting for e in stream.waiters.values())

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def __len__(self) -> int:
        return len(self._streams)

    async def wait_for_change(
        self, stream_id: str, version: int, rendition: str | None = None
    ) -> int:
        """Return once the stream's version differs from `version` (at once if it already
        does); with `rendition`, only a change to that rendition (or publish/end/remove)
        wakes the caller. Returns the current version. Cancel it to give up."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.version != version:
            return -1 if stream is None else stream.version
        key = rendition or _ALL
        event = stream.waiters.get(key)
        if event is None:
            event = stream.waiters[key] = trio.Event()
        await event.wait()
        return self.version(stream_id)

    # -- writer side (packager) --------------------------------------------------------------

    def publish(self, stream_id: str, presentation: Presentation) -> None:
        """Make a stream visible (or replace it after a reconnect; waiters re-check)."""
        if not STREAM_ID_RE.fullmatch(stream_id):
            raise ValueError(f"stream id {stream_id!r} must match {STREAM_ID_RE.pattern}")
        old = self._streams.get(stream_id)
        stream = self._streams[stream_id] = _Stream(presentation)
        if old is not None:
            stream.version = old.version + 1
            old.wake_all()
        log.debug("stream %s published", stream_id)

    def changed(self, stream_id: str) -> None:
        """Call after pushes that returned parts or segments (or a new rendition)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.version += 1
        waiters, seen = stream.waiters, stream.seen
        for rendition in stream.presentation:
            if seen.get(rendition.name) != rendition.version:
                seen[rendition.name] = rendition.version
                event = waiters.pop(rendition.name, None)
                if event is not None:
                    event.set()
        event = waiters.pop(_ALL, None)
        if event is not None:
            event.set()

    def end(self, stream_id: str) -> None:
        """The stream stopped: playlists now carry ENDLIST, so every waiter re-checks.

        Ends the presentation if the packager has not (call `Rendition.end()` first to get
        the final segments for the recorder). The presentation stays so late viewers get
        the ended playlist; `remove` drops it."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.presentation.end()
        stream.ended = True
        stream.version += 1
        stream.wake_all()

    def remove(self, stream_id: str) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.version += 1
            stream.wake_all()
