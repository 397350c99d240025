"""Rollups on a real store: minutes from fine rows, hours from minutes, retention, and the
figures kept through both folds (services/analytics/rollup.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamscale.backends.storage import HealthSample, ViewerSample, open_store
from streamscale.services.analytics.rollup import fold_rollups, roll_up

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # on the hour


async def test_minutes_then_hours_then_retention(tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        # two hours of samples every 10 s on two streams; stream b is 3x as watched
        viewers = [ViewerSample(stream_id=sid, at=T0 + timedelta(seconds=10 * k),
                                interval_s=10.0, concurrent=n, unique_viewers=n + k // 360,
                                by_rendition={"360p": n}, bytes=10 * n, watch_s=10.0 * n)
                   for k in range(720) for sid, n in (("a", 2), ("b", 6))]
        health = [HealthSample(stream_id="a", at=T0 + timedelta(seconds=30 * k),
                               interval_s=30.0, ingest_kbps=1000.0 + k % 2 * 1000,
                               frame_rate_fps=30.0, keyframe_interval_s=2.0, frames=900,
                               dropped_frames=int(k % 3 == 0), transcoder_behind_s=0.0,
                               transcoder_load=0.5) for k in range(240)]
        await store.add_viewer_samples(viewers)
        await store.add_health_samples(health)

        now = T0 + timedelta(hours=2, minutes=30)
        first = await roll_up(store, now=now, lag_s=30, raw_retention_s=3 * 3600,
                              minute_retention_s=30 * 86400)
        assert first.hours == 4  # two whole hours x two streams
        hours = await store.list_rollups("b", resolution_s=3600)
        assert [h.at for h in hours] == [T0, T0 + timedelta(hours=1)]
        assert [h.watch_s for h in hours] == [6 * 3600.0] * 2
        assert [h.concurrent_avg for h in hours] == [6.0, 6.0]
        assert [h.unique_viewers for h in hours] == [6, 7]
        a_hours = await store.list_rollups("a", resolution_s=3600)
        assert [h.ingest_kbps for h in a_hours] == [1500.0, 1500.0]
        assert sum(h.dropped_frames for h in a_hours) == sum(s.dropped_frames for s in health)
        minutes = await store.list_rollups("a", resolution_s=60, limit=1000)
        assert len(minutes) == 120
        assert fold_rollups(minutes, resolution_s=3600) == a_hours

        again = await roll_up(store, now=now, lag_s=30, raw_retention_s=3 * 3600,
                              minute_retention_s=30 * 86400)
        assert (again.minutes, again.hours) == (0, 0)  # nothing new to roll

        # a day later with 1 h of raw retention and 1 day of minutes: raw and minutes go,
        # the hours stay
        later = await roll_up(store, now=T0 + timedelta(days=2), lag_s=30,
                              raw_retention_s=3600, minute_retention_s=86400)
        assert later.deleted == len(viewers) + len(health) + 240
        assert await store.list_viewer_samples("a") == []
        assert await store.list_rollups("a", resolution_s=60) == []
        assert await store.list_rollups("a", resolution_s=3600) == a_hours
        assert sum(h.watch_s for h in await store.list_rollups(
            "a", resolution_s=3600)) == pytest.approx(sum(v.watch_s for v in viewers
                                                          if v.stream_id == "a"))
