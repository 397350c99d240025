"""Rollups: fine samples fold into 1 min buckets, 1 min buckets into 1 h, on a schedule.

Every `analytics.rollup_s` the analytics service runs `roll_up`:

1. 1 min buckets from the fine rows: viewer samples (every cdn.viewer_sample_s), ingest
   health samples (every analytics.health_sample_s) and the chat counts of `chat_messages`,
   for every whole minute that ended at least `lag_s` ago (time for the last batches of
   that minute to arrive over the bus), from where the previous run stopped
   (`analytics_rollup_state`). A sample belongs to the bucket holding its `at`.
2. 1 h buckets from the 1 min ones, for every whole hour the minutes cover.
3. Retention: fine rows older than `raw_retention_s` and 1 min buckets older than
   `minute_retention_s` are deleted; 1 h buckets stay.

Buckets are upserted, so a run that is repeated (two analytics processes, a crash before
the progress was saved) rewrites the same figures. A fine row that arrives after its
minute was rolled (the writer retried past `lag_s`) is in the raw series but not in the
bucket. The same folding (`fold_fine`, `fold_rollups`) builds the newest, not yet rolled
buckets when the API is asked for them (services/analytics/report.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import trio

from ...backends.storage import ChatActivity, HealthSample, Rollup, Store, ViewerSample

log = logging.getLogger(__name__)

MINUTE_S = 60
HOUR_S = 3600
_CHUNK_MINUTES = 60  # fine rows read per query: an hour's worth
_CHUNK_HOURS = 24


def floor_time(at: datetime, bucket_s: int) -> datetime:
    seconds = at.timestamp()
    return datetime.fromtimestamp(seconds - seconds % bucket_s, UTC)


@dataclass
class _Acc:
    """One bucket being folded."""

    viewer_samples: int = 0
    concurrent_sum: float = 0.0
    concurrent_max: int = 0
    unique_viewers: int = 0
    watch_s: float = 0.0
    bytes: int = 0
    by_rendition: dict[str, int] = field(default_factory=dict)
    chat: list[int] = field(default_factory=lambda: [0, 0, 0])
    health_samples: int = 0
    kbps_sum: float = 0.0
    fps_sum: float = 0.0
    fps_min: float | None = None
    gop_sum: float = 0.0
    frames: int = 0
    dropped: int = 0
    behind_max: float = 0.0
    load_max: float = 0.0
    shed: set[str] = field(default_factory=set)

    def viewers(self, n: int, avg: float, peak: int, unique: int, watch_s: float,
                nbytes: int, by_rendition: Iterable[tuple[str, int]]) -> None:
        self.viewer_samples += n
        self.concurrent_sum += avg * n
        self.concurrent_max = max(self.concurrent_max, peak)
        self.unique_viewers = max(self.unique_viewers, unique)
        self.watch_s += watch_s
        self.bytes += nbytes
        for name, count in by_rendition:
            self.by_rendition[name] = max(self.by_rendition.get(name, 0), count)

    def health(self, n: int, kbps: float, fps: float, fps_min: float, gop_s: float,
               frames: int, dropped: int, behind_s: float, load: float,
               shed: Iterable[str]) -> None:
        self.health_samples += n
        self.kbps_sum += kbps * n
        self.fps_sum += fps * n
        self.fps_min = fps_min if self.fps_min is None else min(self.fps_min, fps_min)
        self.gop_sum += gop_s * n
        self.frames += frames
        self.dropped += dropped
        self.behind_max = max(self.behind_max, behind_s)
        self.load_max = max(self.load_max, load)
        self.shed.update(shed)

    def rollup(self, stream_id: str, resolution_s: int, at: datetime) -> Rollup:
        n, h = self.viewer_samples, self.health_samples
        return Rollup(
            stream_id=stream_id, resolution_s=resolution_s, at=at, viewer_samples=n,
            concurrent_avg=self.concurrent_sum / n if n else 0.0,
            concurrent_max=self.concurrent_max, unique_viewers=self.unique_viewers,
            watch_s=self.watch_s, bytes=self.bytes, by_rendition=dict(self.by_rendition),
            chat_messages=self.chat[0], chat_held=self.chat[1], chat_removed=self.chat[2],
            health_samples=h, ingest_kbps=self.kbps_sum / h if h else 0.0,
            frame_rate_fps=self.fps_sum / h if h else 0.0,
            frame_rate_min_fps=self.fps_min or 0.0,
            keyframe_interval_s=self.gop_sum / h if h else 0.0, frames=self.frames,
            dropped_frames=self.dropped, transcoder_behind_max_s=self.behind_max,
            transcoder_load_max=self.load_max, shed_rungs=tuple(sorted(self.shed)))


class _Buckets:
    def __init__(self, resolution_s: int) -> None:
        self.resolution_s = resolution_s
        self._accs: dict[tuple[str, datetime], _Acc] = {}

    def __call__(self, stream_id: str, at: datetime, *, start: bool = False) -> _Acc:
        key = (stream_id, at if start else floor_time(at, self.resolution_s))
        acc = self._accs.get(key)
        if acc is None:
            acc = self._accs[key] = _Acc()
        return acc

    def rollups(self) -> list[Rollup]:
        return [acc.rollup(sid, self.resolution_s, at)
                for (sid, at), acc in sorted(self._accs.items())]


def fold_fine(viewers: Iterable[ViewerSample], health: Iterable[HealthSample],
              chat: Iterable[ChatActivity], *, resolution_s: int = MINUTE_S) -> list[Rollup]:
    """Buckets of `resolution_s` from fine rows (chat counts already per bucket)."""
    bucket = _Buckets(resolution_s)
    for v in viewers:
        bucket(v.stream_id, v.at).viewers(1, v.concurrent, v.concurrent, v.unique_viewers,
                                          v.watch_s, v.bytes, v.by_rendition.items())
    for s in health:
        bucket(s.stream_id, s.at).health(
            1, s.ingest_kbps, s.frame_rate_fps, s.frame_rate_fps, s.keyframe_interval_s,
            s.frames, s.dropped_frames, s.transcoder_behind_s, s.transcoder_load, s.shed_rungs)
    for c in chat:
        counts = bucket(c.stream_id, c.at).chat
        counts[0] += c.messages
        counts[1] += c.held
        counts[2] += c.removed
    return bucket.rollups()


def fold_rollups(rollups: Iterable[Rollup], *, resolution_s: int) -> list[Rollup]:
    """Coarser buckets from finer ones (averages weighted by their sample counts)."""
    bucket = _Buckets(resolution_s)
    for r in rollups:
        acc = bucket(r.stream_id, r.at)
        if r.viewer_samples:
            acc.viewers(r.viewer_samples, r.concurrent_avg, r.concurrent_max,
                        r.unique_viewers, r.watch_s, r.bytes, r.by_rendition.items())
        if r.health_samples:
            acc.health(r.health_samples, r.ingest_kbps, r.frame_rate_fps,
                       r.frame_rate_min_fps, r.keyframe_interval_s, r.frames,
                       r.dropped_frames, r.transcoder_behind_max_s, r.transcoder_load_max,
                       r.shed_rungs)
        acc.chat[0] += r.chat_messages
        acc.chat[1] += r.chat_held
        acc.chat[2] += r.chat_removed
    return bucket.rollups()


@dataclass(frozen=True, slots=True, kw_only=True)
class RollupResult:
    minutes: int  # 1 min buckets written
    hours: int
    deleted: int  # rows aged out
    minute_until: datetime
    hour_until: datetime


async def roll_up(store: Store, *, now: datetime, lag_s: float, raw_retention_s: float,
                  minute_retention_s: float) -> RollupResult:
    """One scheduled run; see the module docstring."""
    raw_floor = floor_time(now - timedelta(seconds=raw_retention_s), MINUTE_S)
    minute_end = floor_time(now - timedelta(seconds=lag_s), MINUTE_S)
    start = max(await store.get_rolled_until(MINUTE_S) or raw_floor, raw_floor)
    minutes = 0
    while start < minute_end:
        until = min(minute_end, start + timedelta(minutes=_CHUNK_MINUTES))
        rows = fold_fine(
            await store.scan_viewer_samples(since=start, until=until),
            await store.scan_health_samples(since=start, until=until),
            await store.chat_activity(since=start, until=until, bucket_s=MINUTE_S))
        await store.upsert_rollups(rows)
        await store.set_rolled_until(MINUTE_S, until)
        minutes += len(rows)
        start = until
    minute_until = max(start, minute_end)

    minute_floor = floor_time(now - timedelta(seconds=minute_retention_s), HOUR_S)
    hour_end = floor_time(minute_until, HOUR_S)
    start = max(await store.get_rolled_until(HOUR_S) or minute_floor, minute_floor)
    hours = 0
    while start < hour_end:
        until = min(hour_end, start + timedelta(hours=_CHUNK_HOURS))
        rows = fold_rollups(
            await store.scan_rollups(resolution_s=MINUTE_S, since=start, until=until),
            resolution_s=HOUR_S)
        await store.upsert_rollups(rows)
        await store.set_rolled_until(HOUR_S, until)
        hours += len(rows)
        start = until

    deleted = await store.delete_analytics_before(
        raw_before=now - timedelta(seconds=raw_retention_s),
        rollups_before={MINUTE_S: now - timedelta(seconds=minute_retention_s)})
    return RollupResult(minutes=minutes, hours=hours, deleted=deleted,
                        minute_until=minute_until, hour_until=max(start, hour_end))


class RollupScheduler:
    """Runs `roll_up` every `rollup_s`; a failed run is logged and retried next time."""

    def __init__(self, store: Store, *, rollup_s: float, lag_s: float,
                 raw_retention_s: float, minute_retention_s: float) -> None:
        self._store = store
        self.rollup_s = rollup_s
        self.lag_s = lag_s
        self.raw_retention_s = raw_retention_s
        self.minute_retention_s = minute_retention_s
        self.runs = 0
        self.failures = 0
        self.last: RollupResult | None = None
        self.ran = trio.Event()  # replaced after each run (tests wait for one)

    async def run_once(self) -> RollupResult:
        result = await roll_up(self._store, now=datetime.now(UTC), lag_s=self.lag_s,
                               raw_retention_s=self.raw_retention_s,
                               minute_retention_s=self.minute_retention_s)
        self.runs += 1
        self.last = result
        return result

    async def run(self, *, shutdown: trio.Event) -> None:
        while not shutdown.is_set():
            try:
                result = await self.run_once()
                if result.minutes or result.hours or result.deleted:
                    log.info("analytics: rolled up %d 1 min and %d 1 h buckets, %d rows "
                             "aged out", result.minutes, result.hours, result.deleted)
            except Exception as exc:
                self.failures += 1
                log.warning("analytics: rollup failed, retrying in %.0f s (%r)",
                            self.rollup_s, exc)
            self.ran.set()
            self.ran = trio.Event()
            with trio.move_on_after(self.rollup_s):
                await shutdown.wait()
