"""Stream analytics storage (issue 14): ingest health samples, chat activity, rollups.

Fine samples (`viewer_samples`, `ingest_health`) are written every few seconds and kept
`analytics.raw_retention_s`; `services/analytics/rollup.py` folds them, with the chat
counts, into `Rollup` buckets of 60 s and 3,600 s (`upsert_rollups`, idempotent: a bucket
rolled again is replaced), records how far it got (`set_rolled_until`), and deletes what
has aged out (`delete_analytics_before`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ._records import ViewerSample


@dataclass(frozen=True, kw_only=True)
class HealthSample:
    """A stream's ingest health over `interval_s` up to `at` (services/media/health.py)."""

    stream_id: str
    at: datetime
    interval_s: float
    ingest_kbps: float
    frame_rate_fps: float
    keyframe_interval_s: float
    frames: int
    dropped_frames: int
    transcoder_behind_s: float
    transcoder_load: float
    shed_rungs: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ChatActivity:
    """Chat of one stream in the bucket starting at `at`.

    messages: posted (visible, held or since deleted); held: of those, the ones moderation
    held for review when posted (whatever was decided later); removed: messages deleted in
    the bucket (by `deleted_at`, whenever they were posted).
    """

    stream_id: str
    at: datetime
    messages: int = 0
    held: int = 0
    removed: int = 0


@dataclass(frozen=True, kw_only=True)
class Rollup:
    """One stream's figures over [at, at + resolution_s)."""

    stream_id: str
    resolution_s: int
    at: datetime
    viewer_samples: int = 0  # how many fine viewer samples went in (weights the average)
    concurrent_avg: float = 0.0
    concurrent_max: int = 0
    unique_viewers: int = 0  # since the stream went live, as of the bucket's end
    watch_s: float = 0.0
    bytes: int = 0
    by_rendition: Mapping[str, int] = field(default_factory=dict)  # peak per rendition
    chat_messages: int = 0
    chat_held: int = 0
    chat_removed: int = 0
    health_samples: int = 0  # weights the health averages
    ingest_kbps: float = 0.0  # averages over the health samples
    frame_rate_fps: float = 0.0
    frame_rate_min_fps: float = 0.0
    keyframe_interval_s: float = 0.0
    frames: int = 0
    dropped_frames: int = 0
    transcoder_behind_max_s: float = 0.0
    transcoder_load_max: float = 0.0
    shed_rungs: tuple[str, ...] = ()  # every rung shed at some point in the bucket


class AnalyticsStore(Protocol):
    async def add_health_samples(self, samples: Sequence[HealthSample]) -> None:
        """Insert; a sample already stored (same stream_id and at) is left as it is."""

    async def list_health_samples(
        self, stream_id: str, *, since: datetime | None = None,
        until: datetime | None = None, limit: int = 1000,
    ) -> list[HealthSample]:
        """since <= at < until, oldest first, at most `limit`."""

    async def scan_viewer_samples(
        self, *, since: datetime, until: datetime
    ) -> list[ViewerSample]:
        """Every stream's viewer samples with since <= at < until (rollups)."""

    async def scan_health_samples(
        self, *, since: datetime, until: datetime
    ) -> list[HealthSample]:
        """Every stream's health samples with since <= at < until (rollups)."""

    async def chat_activity(
        self, *, since: datetime, until: datetime, bucket_s: int,
        stream_id: str | None = None,
    ) -> list[ChatActivity]:
        """Chat counts per stream and bucket (buckets aligned to multiples of `bucket_s`
        since the epoch) over [since, until); buckets with nothing are left out."""

    async def upsert_rollups(self, rollups: Sequence[Rollup]) -> None:
        """Insert or replace (same stream_id, resolution_s, at)."""

    async def list_rollups(
        self, stream_id: str, *, resolution_s: int, since: datetime | None = None,
        until: datetime | None = None, limit: int = 1000,
    ) -> list[Rollup]:
        """Buckets with since <= at < until, oldest first."""

    async def scan_rollups(
        self, *, resolution_s: int, since: datetime, until: datetime
    ) -> list[Rollup]:
        """Every stream's buckets of `resolution_s` with since <= at < until."""

    async def get_rolled_until(self, resolution_s: int) -> datetime | None:
        """How far buckets of `resolution_s` are complete (None: never rolled)."""

    async def set_rolled_until(self, resolution_s: int, until: datetime) -> None:
        """Record progress; never moves backwards."""

    async def delete_analytics_before(
        self, *, raw_before: datetime, rollups_before: Mapping[int, datetime]
    ) -> int:
        """Delete viewer and health samples older than `raw_before`, and buckets of each
        resolution older than its cut-off; how many rows went."""
