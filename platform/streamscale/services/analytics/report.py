"""A stream's analytics for a time range, read at the resolution that fits the range.

- raw: the fine rows themselves (viewer samples every cdn.viewer_sample_s, health samples
  every analytics.health_sample_s), chat per minute; only within the raw retention.
- 1m / 1h: the rolled-up buckets (services/analytics/rollup.py) up to where the rollup has
  got, and for the newest part, not rolled yet, the same folding done here on the fly from
  the fine rows (1m) or from those minutes (1h); so the series reaches `to` either way.
- auto: raw for ranges up to 1 h that the raw retention still covers, 1m up to 2 days
  within the 1 min retention, else 1h.

The summary is computed from the same series: peak = the highest concurrent count of any
sample, unique = the highest distinct-session count (it counts since live, so the latest),
watch time = the sum of the samples' viewer-seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ...backends.storage import Rollup, Store, Stream
from ..errors import ValidationFailed
from ._schemas import (
    AnalyticsOut,
    AnalyticsSummary,
    ChatPoint,
    HealthPoint,
    ViewerPoint,
)
from .rollup import HOUR_S, MINUTE_S, floor_time, fold_fine, fold_rollups

MAX_RANGE_S = {"raw": 6 * 3600, "1m": 7 * 86400, "1h": 400 * 86400}
AUTO_RAW_S = 3600
AUTO_MINUTE_S = 2 * 86400
RAW_ROWS_MAX = 50_000  # 6 h of 1 s samples is 21,600: the cap is never the binding limit


def choose_resolution(requested: str, *, since: datetime, until: datetime, now: datetime,
                      raw_retention_s: float, minute_retention_s: float) -> str:
    span_s = (until - since).total_seconds()
    age_s = (now - since).total_seconds()
    if requested == "auto" and span_s > MAX_RANGE_S["1h"]:
        raise ValidationFailed(f"at most {MAX_RANGE_S['1h'] // 86400} days at a time")
    if requested == "auto":
        if span_s <= AUTO_RAW_S and age_s <= raw_retention_s:
            return "raw"
        if span_s <= AUTO_MINUTE_S and age_s <= minute_retention_s:
            return "1m"
        return "1h"
    if span_s > MAX_RANGE_S[requested]:
        raise ValidationFailed(
            f"resolution {requested} covers at most {MAX_RANGE_S[requested] // 3600} h: "
            "ask for a shorter range or a coarser resolution")
    return requested


async def _minutes(store: Store, stream_id: str, since: datetime,
                   until: datetime) -> list[Rollup]:
    """1 min buckets over [since, until): rolled ones, then the rest folded from raw."""
    rolled_until = await store.get_rolled_until(MINUTE_S) or since
    out: list[Rollup] = []
    if rolled_until > since:
        out = await store.list_rollups(stream_id, resolution_s=MINUTE_S, since=since,
                                       until=min(until, rolled_until), limit=20_000)
    tail = max(since, rolled_until)
    if tail < until:
        out += fold_fine(
            await store.list_viewer_samples(stream_id, since=tail, until=until,
                                            limit=RAW_ROWS_MAX),
            await store.list_health_samples(stream_id, since=tail, until=until,
                                            limit=RAW_ROWS_MAX),
            await store.chat_activity(since=tail, until=until, bucket_s=MINUTE_S,
                                      stream_id=stream_id))
    return out


async def _hours(store: Store, stream_id: str, since: datetime,
                 until: datetime) -> list[Rollup]:
    rolled_until = await store.get_rolled_until(HOUR_S) or since
    out: list[Rollup] = []
    if rolled_until > since:
        out = await store.list_rollups(stream_id, resolution_s=HOUR_S, since=since,
                                       until=min(until, rolled_until), limit=20_000)
    tail = max(since, rolled_until)
    if tail < until:
        out += fold_rollups(await _minutes(store, stream_id, tail, until),
                            resolution_s=HOUR_S)
    return out


async def stream_analytics(
    store: Store, stream: Stream, *, since: datetime, until: datetime, resolution: str,
    now: datetime, raw_retention_s: float, minute_retention_s: float,
) -> AnalyticsOut:
    if until <= since:
        raise ValidationFailed("`to` must be after `from`")
    resolution = choose_resolution(resolution, since=since, until=until, now=now,
                                   raw_retention_s=raw_retention_s,
                                   minute_retention_s=minute_retention_s)
    if resolution == "raw":
        viewers = await store.list_viewer_samples(stream.id, since=since, until=until,
                                                  limit=RAW_ROWS_MAX)
        health = await store.list_health_samples(stream.id, since=since, until=until,
                                                 limit=RAW_ROWS_MAX)
        chat = await store.chat_activity(since=since, until=until, bucket_s=MINUTE_S,
                                         stream_id=stream.id)
        buckets = fold_fine(viewers, health, chat)
        out = _series(stream.id, buckets, MINUTE_S)
        out["viewers"] = [ViewerPoint(
            at=v.at, concurrent=v.concurrent, concurrent_max=v.concurrent,
            unique_viewers=v.unique_viewers, watch_s=v.watch_s, bytes=v.bytes,
            by_rendition=dict(v.by_rendition)) for v in viewers]
        out["health"] = [HealthPoint(
            at=h.at, ingest_kbps=h.ingest_kbps, frame_rate_fps=h.frame_rate_fps,
            frame_rate_min_fps=h.frame_rate_fps, keyframe_interval_s=h.keyframe_interval_s,
            frames=h.frames, dropped_frames=h.dropped_frames,
            transcoder_behind_s=h.transcoder_behind_s, transcoder_load=h.transcoder_load,
            shed_rungs=list(h.shed_rungs)) for h in health]
    else:
        res_s = MINUTE_S if resolution == "1m" else HOUR_S
        start = floor_time(since, res_s)
        fetch = _minutes if res_s == MINUTE_S else _hours
        buckets = await fetch(store, stream.id, start, until)
        out = _series(stream.id, buckets, res_s)
    return AnalyticsOut(
        stream_id=stream.id, from_=since, to=until, resolution=resolution,  # type: ignore[arg-type]
        summary=_summary(buckets, span_s=(until - since).total_seconds()),
        viewers=out["viewers"], chat=out["chat"], health=out["health"])


def _series(stream_id: str, buckets: Sequence[Rollup], res_s: int) -> dict[str, list]:  # type: ignore[type-arg]
    minutes = res_s / 60
    return {
        "viewers": [ViewerPoint(
            at=b.at, concurrent=b.concurrent_avg, concurrent_max=b.concurrent_max,
            unique_viewers=b.unique_viewers, watch_s=b.watch_s, bytes=b.bytes,
            by_rendition=dict(b.by_rendition)) for b in buckets if b.viewer_samples],
        "chat": [ChatPoint(
            at=b.at, messages=b.chat_messages, messages_per_minute=b.chat_messages / minutes,
            held=b.chat_held, removed=b.chat_removed)
            for b in buckets if b.chat_messages or b.chat_held or b.chat_removed],
        "health": [HealthPoint(
            at=b.at, ingest_kbps=b.ingest_kbps, frame_rate_fps=b.frame_rate_fps,
            frame_rate_min_fps=b.frame_rate_min_fps,
            keyframe_interval_s=b.keyframe_interval_s, frames=b.frames,
            dropped_frames=b.dropped_frames, transcoder_behind_s=b.transcoder_behind_max_s,
            transcoder_load=b.transcoder_load_max, shed_rungs=list(b.shed_rungs))
            for b in buckets if b.health_samples],
    }


def _summary(buckets: Sequence[Rollup], *, span_s: float) -> AnalyticsSummary:
    by_rendition: dict[str, int] = {}
    for b in buckets:
        for name, n in b.by_rendition.items():
            by_rendition[name] = max(by_rendition.get(name, 0), n)
    watch_s = sum(b.watch_s for b in buckets)
    messages = sum(b.chat_messages for b in buckets)
    return AnalyticsSummary(
        peak_viewers=max((b.concurrent_max for b in buckets), default=0),
        unique_viewers=max((b.unique_viewers for b in buckets), default=0),
        watch_s=watch_s, watch_minutes=watch_s / 60, viewers_by_rendition=by_rendition,
        chat_messages=messages,
        chat_messages_per_minute=messages / (span_s / 60) if span_s > 0 else 0.0,
        chat_held=sum(b.chat_held for b in buckets),
        chat_removed=sum(b.chat_removed for b in buckets),
        frames=sum(b.frames for b in buckets),
        dropped_frames=sum(b.dropped_frames for b in buckets),
        transcoder_behind_max_s=max((b.transcoder_behind_max_s for b in buckets), default=0.0),
        transcoder_load_max=max((b.transcoder_load_max for b in buckets), default=0.0),
        shed_rungs=sorted({name for b in buckets for name in b.shed_rungs}))


def default_range(stream: Stream, now: datetime) -> tuple[datetime, datetime]:
    since = stream.started_at or stream.created_at
    until = stream.ended_at + timedelta(minutes=1) if stream.ended_at else now
    return since, max(until, since + timedelta(seconds=1))
