"""GET /api/streams/{id}/analytics: who may read it, bad input, and what it says.

1. Access and validation (gateway + analytics): the owner only (others 403, anonymous
   401, unknown 404), `from` / `to` / `resolution` checked (400 in the one error shape).
2. Figures from stored rows: viewer and health samples and chat messages written through
   the store, read back raw and as 1 min buckets (folded on the fly, then rolled up by
   the scheduled job) with the same totals.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from streamscale.backends.storage import (
    ChatMessage,
    HealthSample,
    ViewerSample,
    open_store,
)
from streamscale.services.analytics.rollup import roll_up
from streamscale.testing import make_config, running_platform


async def _user(api: httpx.AsyncClient, name: str) -> dict[str, str]:
    await api.post("/api/users/register", json={
        "username": name, "email": f"{name}@example.com", "password": "pass word 1"})
    tokens = (await api.post("/api/users/login", json={
        "login": name, "password": "pass word 1"})).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_owner_only_and_bad_input_gets_4xx(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_platform(config, ("gateway", "analytics")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api")) as api:
        owner, other = await _user(api, "caster"), await _user(api, "viewer")
        stream = (await api.post("/api/streams/start", headers=owner,
                                 json={"title": "t", "category": "c"})).json()["stream"]
        url = f"/api/streams/{stream['id']}/analytics"
        r = await api.get(url)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert (await api.get(url, headers=other)).status_code == 403
        assert (await api.get(f"/api/streams/{uuid.uuid4().hex}/analytics",
                              headers=owner)).status_code == 404
        ok = await api.get(url, headers=owner)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["resolution"] == "raw"
        assert body["summary"]["peak_viewers"] == 0
        assert (body["viewers"], body["chat"], body["health"]) == ([], [], [])
        now = datetime.now(UTC)
        bad: list[dict[str, str]] = [
            {"from": "yesterday"}, {"to": "2026-13-01T00:00:00Z"},
            {"from": "2026-01-01T00:00:00"},  # no time zone
            {"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
            {"resolution": "1s"}, {"resolution": "raw", "from": "2026-01-01T00:00:00Z",
                                   "to": "2026-01-02T00:00:00Z"},
            {"from": "' OR 1=1 --"}, {"limit": "5"}, {"from": "0.5"}, {"to": "1700000000"},
            {"from": "2000-01-01T00:00:00Z"},  # more than 400 days at auto resolution
        ]
        for params in bad:
            r = await api.get(url, headers=owner, params=params)
            assert 400 <= r.status_code < 500, (params, r.status_code, r.text)
            assert set(r.json()["error"]) >= {"code", "message", "request_id"}
        metrics = (await api.get("/metrics")).text  # the analytics worker reports there too
        assert "streamscale_analytics_viewer_batches_total" in metrics
        assert "streamscale_analytics_health_samples_written_total" in metrics
        for raw_query in ("resolution=%ED%A0%80", "from=%ED%A0%80", "to=%00"):  # a lone
            r = await api.get(f"{url}?{raw_query}", headers=owner)  # surrogate, a NUL
            assert 400 <= r.status_code < 500, (raw_query, r.status_code, r.text)


def _viewer(stream_id: str, at: datetime, n: int) -> ViewerSample:
    return ViewerSample(stream_id=stream_id, at=at, interval_s=5.0, concurrent=n,
                        unique_viewers=n, by_rendition={"360p": n}, bytes=100 * n,
                        watch_s=5.0 * n)


async def test_figures_raw_and_rolled_agree(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_platform(config, ("gateway",)) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api")) as api:
        owner = await _user(api, "caster")
        stream = (await api.post("/api/streams/start", headers=owner,
                                 json={"title": "t", "category": "c"})).json()["stream"]
        sid = stream["id"]
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
        async with await open_store(config.storage_url) as store:
            # 3 minutes of samples every 5 s: 4 viewers, then 6 in the last minute
            await store.add_viewer_samples([
                _viewer(sid, start + timedelta(seconds=5 * k), 4 if k < 24 else 6)
                for k in range(36)])
            await store.add_health_samples([HealthSample(
                stream_id=sid, at=start + timedelta(seconds=2 * k), interval_s=2.0,
                ingest_kbps=3000.0, frame_rate_fps=30.0 if k else 24.0,
                keyframe_interval_s=2.0, frames=60, dropped_frames=1 if k == 5 else 0,
                transcoder_behind_s=0.1 * (k == 7), transcoder_load=0.5,
                shed_rungs=("720p",) if k == 7 else ()) for k in range(90)])
            users_ = await api.get("/api/users/me", headers=owner)
            uid = users_.json()["id"]
            for k in range(7):  # 7 posted in minute 1, 2 of them held, 1 removed in minute 2
                message, _ = await store.add_chat_message(ChatMessage(
                    id=uuid.uuid4().hex, stream_id=sid, user_id=uid, client_msg_id=str(k),
                    message="hi", created_at=start + timedelta(minutes=1, seconds=k),
                    status="held" if k < 2 else "visible",
                    moderation={"reasons": ["link"]} if k < 2 else None))
            await store.set_chat_message_status(
                message.id, status="deleted", expected=("visible",), by=uid,
                at=start + timedelta(minutes=2, seconds=30))

            async def read(resolution: str) -> dict[str, Any]:
                r = await api.get(f"/api/streams/{sid}/analytics", headers=owner, params={
                    "from": start.isoformat(), "to": (start + timedelta(minutes=4)).isoformat(),
                    "resolution": resolution})
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                return body

            raw = await read("raw")
            assert len(raw["viewers"]) == 36 and len(raw["health"]) == 90
            summary = raw["summary"]
            assert (summary["peak_viewers"], summary["unique_viewers"]) == (6, 6)
            assert summary["watch_s"] == pytest.approx(5.0 * (24 * 4 + 12 * 6))
            assert summary["viewers_by_rendition"] == {"360p": 6}
            assert (summary["chat_messages"], summary["chat_held"],
                    summary["chat_removed"]) == (7, 2, 1)
            assert summary["chat_messages_per_minute"] == pytest.approx(7 / 4)
            assert summary["dropped_frames"] == 1
            assert summary["shed_rungs"] == ["720p"]
            assert summary["transcoder_behind_max_s"] == pytest.approx(0.1)
            assert [(c["messages"], c["held"], c["removed"]) for c in raw["chat"]] == [
                (7, 2, 0), (0, 0, 1)]

            folded = await read("1m")  # nothing rolled yet: folded from the fine rows
            result = await roll_up(store, now=start + timedelta(minutes=10), lag_s=30,
                                   raw_retention_s=3600, minute_retention_s=86400)
            assert result.minutes == 3  # three minutes had rows
            rolled = await read("1m")
            for body in (folded, rolled):
                assert body["resolution"] == "1m"
                assert body["summary"] == summary
                assert [v["concurrent"] for v in body["viewers"]] == [4, 4, 6]
                assert [h["frame_rate_min_fps"] for h in body["health"]] == [24, 30, 30]
            assert rolled == folded
            again = await roll_up(store, now=start + timedelta(minutes=10), lag_s=30,
                                  raw_retention_s=3600, minute_retention_s=86400)
            assert again.minutes == 0  # progress was kept
            assert (await read("auto"))["resolution"] == "raw"


_DATES = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-11))]))
    .map(lambda d: d.isoformat()),
    st.text(max_size=40),
    st.sampled_from(["2026-12-04T00:00:00Z", "0", "-1e309", "9999-12-31T23:59:59+14:00",
                     "0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "nan"]),
)


async def test_property_no_query_gets_a_5xx(tmp_path: Path) -> None:
    """Any from / to / resolution (dates near and far, text, junk): 200 or a 4xx error."""
    config = make_config(tmp_path)
    async with running_platform(config, ("gateway",)) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api")) as api:
        owner = await _user(api, "caster")
        stream = (await api.post("/api/streams/start", headers=owner,
                                 json={"title": "t", "category": "c"})).json()["stream"]
        url = f"{platform.api_url.removesuffix('/api')}/api/streams/{stream['id']}/analytics"

        @settings(max_examples=150, deadline=None, database=None)
        @given(since=st.none() | _DATES, until=st.none() | _DATES,
               resolution=st.none() | st.sampled_from(["auto", "raw", "1m", "1h"])
               | st.text(max_size=5))
        def check(client: httpx.Client, since: str | None, until: str | None,
                  resolution: str | None) -> None:
            params = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                      for k, v in (("from", since), ("to", until),
                                   ("resolution", resolution)) if v is not None}
            r = client.get(url, params=params)
            assert r.status_code < 500, (params, r.text)
            if r.status_code != 200:
                assert set(r.json()["error"]) >= {"code", "message", "request_id"}

        def run() -> None:
            with httpx.Client(headers=owner, timeout=30) as client:
                check(client)

        await trio.to_thread.run_sync(run)
