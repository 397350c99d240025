"""Recording: closed segments to disk as they happen, a VOD playlist when the stream ends.

The packager must never wait on the disk, so `Recorder.segment` is synchronous and only
queues: one writer task per stream drains a bounded memory channel and writes each file
in a worker thread (temp file + rename, so a reader never sees half a segment). When the
queue is full the segment is dropped, counted and logged; the VOD playlist then lists
only what reached the disk.

Layout (what the origin's /vod/ routes serve):

    <root>/<stream_id>/master.m3u8                  written last: the recording is complete
    <root>/<stream_id>/<rendition>/index.m3u8       VOD playlist (EXT-X-ENDLIST)
    <root>/<stream_id>/<rendition>/init.mp4, <msn>.m4s

Retention: `expire_recordings` removes a recording once its newest file is older than
the retention period; `expire_periodically` runs it off the event loop on an interval.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ...protocols.hls import (
    PLAYLIST_URI,
    Part,
    Rendition,
    Segment,
    SegmentInfo,
    Variant,
    init_uri,
    master_playlist,
    segment_uri,
    vod_playlist,
)

log = logging.getLogger(__name__)

MASTER_URI = "master.m3u8"
DAY_S = 86_400.0


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file, or all of the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class _Write:
    rendition: str
    info: SegmentInfo
    payload: bytes
    init: bytes | None  # the segment's init segment, with the first segment that uses it


@dataclass(eq=False)
class _Track:
    rendition: Rendition
    inits_queued: set[int] = field(default_factory=set)  # map indexes (see init_uri)
    written: list[SegmentInfo] = field(default_factory=list)
    bits: int = 0
    peak_bps: float = 0.0


class Recorder:
    """Records one stream. Run `run()` in the packager's nursery; feed it with
    `segment()` (or `record()`); call `end()` when the stream stops: `run()` then drains
    the queue, writes the playlists and returns."""

    def __init__(
        self,
        root: Path,
        stream_id: str,
        *,
        queue_segments: int = 32,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self.directory = root / stream_id
        self.stream_id = stream_id
        self._send, self._receive = trio.open_memory_channel[_Write](queue_segments)
        self._limiter = limiter
        self._tracks: dict[str, _Track] = {}
        self.queued = 0
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self.finished = trio.Event()

    # -- packager side: never blocks ---------------------------------------------------------

    def record(self, rendition: Rendition, events: Iterable[Part | Segment]) -> None:
        """Pass everything a push returned; only closed segments are recorded."""
        for event in events:
            if isinstance(event, Segment):
                self.segment(rendition, event)

    def segment(self, rendition: Rendition, segment: Segment) -> bool:
        """Queue a closed segment for the disk; False if dropped (queue full or ended)."""
        track = self._tracks.get(rendition.name)
        if track is None:
            track = self._tracks[rendition.name] = _Track(rendition)
        item = _Write(
            rendition.name,
            segment.info,
            segment.payload,
            None if segment.map_index in track.inits_queued
            else rendition.init_for(segment.map_index),
        )
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1
            log.warning(
                "recording %s: disk behind, dropped %s segment %d (%d dropped so far)",
                self.stream_id, rendition.name, segment.msn, self.dropped,
            )
            return False
        except trio.ClosedResourceError:
            log.warning("recording %s: segment after end() ignored", self.stream_id)
            return False
        track.inits_queued.add(segment.map_index)
        self.queued += 1
        return True

    def end(self) -> None:
        """No more segments: the writer finishes the queue, then writes the playlists."""
        self._send.close()

    # -- writer task -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._receive:
            async for item in self._receive:
                await self._write(item)
        try:
            await trio.to_thread.run_sync(
                self._write_playlists, self._playlists(), limiter=self._limiter
            )
        except OSError as exc:
            log.error("recording %s: playlists not written: %s", self.stream_id, exc)
        else:
            log.info(
                "recording %s complete: %d segments written, %d dropped, %d failed",
                self.stream_id, self.written, self.dropped, self.failed,
            )
        finally:
            self.finished.set()

    async def _write(self, item: _Write) -> None:
        folder = self.directory / item.rendition
        try:
            await trio.to_thread.run_sync(self._write_files, folder, item, limiter=self._limiter)
        except OSError as exc:
            self.failed += 1
            log.error("recording %s: %s segment %d not written: %s",
                      self.stream_id, item.rendition, item.info.msn, exc)
            if item.init is not None:
                # retry with the next one
                self._tracks[item.rendition].inits_queued.discard(item.info.map_index)
            return
        self.written += 1
        track = self._tracks[item.rendition]
        track.written.append(item.info)
        bits = len(item.payload) * 8
        track.bits += bits
        if item.info.duration_s > 0:
            track.peak_bps = max(track.peak_bps, bits / item.info.duration_s)

    @staticmethod
    def _write_files(folder: Path, item: _Write) -> None:
        if item.init is not None:
            write_atomic(folder / init_uri(item.info.map_index), item.init)
        write_atomic(folder / segment_uri(item.info.msn), item.payload)

    def _playlists(self) -> dict[Path, bytes]:
        files: dict[Path, bytes] = {}
        variants = []
        for name, track in self._tracks.items():
            if not track.written:
                continue
            files[self.directory / name / PLAYLIST_URI] = vod_playlist(track.written)
            seconds = sum(s.duration_s for s in track.written)
            rendition = track.rendition
            resolution = None
            if rendition.video is not None:
                resolution = (rendition.video.config.width, rendition.video.config.height)
            variants.append(Variant(
                f"{name}/{PLAYLIST_URI}",
                max(1, math.ceil(track.peak_bps)),
                rendition.codecs,
                round(track.bits / seconds) if seconds > 0 else None,
                resolution,
                rendition.frame_rate or (
                    rendition.measured_frame_rate() if rendition.video else None
                ),
            ))
        if variants:
            files[self.directory / MASTER_URI] = master_playlist(variants)
        return files

    @staticmethod
    def _write_playlists(files: dict[Path, bytes]) -> None:
        for path, data in files.items():  # the master comes last: the recording is complete
            write_atomic(path, data)


# -- retention -------------------------------------------------------------------------------


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def expire_recordings(root: Path, retention_days: float, now: float) -> list[str]:
    """Delete recordings whose newest file is older than `retention_days` before `now`
    (Unix seconds); a recording still being written keeps fresh files and survives.
    Returns the stream ids removed."""
    if not root.is_dir():
        return []
    cutoff = now - retention_days * DAY_S
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and _newest_mtime(entry) < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


async def expire_periodically(
    root: Path,
    retention_days: float,
    *,
    interval_s: float = 3600.0,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run `expire_recordings` now and every `interval_s`; started after the first pass."""
    first = True
    while True:
        try:
            removed = await trio.to_thread.run_sync(
                expire_recordings, root, retention_days, clock()
            )
        except OSError as exc:
            log.error("recording retention pass failed: %s", exc)
        else:
            if removed:
                log.info("retention removed %d recordings: %s", len(removed), removed)
        if first:
            task_status.started()
            first = False
        await trio.sleep(interval_s)
