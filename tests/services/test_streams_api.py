"""Streams: start, get, rotate key, stop; only the owner may change a stream."""

from __future__ import annotations

import httpx

from streamscale.backends.storage import Store
from streamscale.services.streaming import StreamService
from streamscale.testing import RunningPlatform

from .helpers import assert_error, signed_in


async def _start(api: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, object]:
    r = await api.post("/api/streams/start", headers=auth, json={
        "title": "Speedrun", "category": "Gaming", "tags": ["Any-Percent", "pb"]})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


async def test_stream_lifecycle(api: httpx.AsyncClient, platform: RunningPlatform) -> None:
    auth = await signed_in(api)
    started = await _start(api, auth)
    stream = started["stream"]
    assert isinstance(stream, dict)
    assert stream["status"] == "created"
    assert stream["tags"] == ["any-percent", "pb"]
    key = started["stream_key"]
    assert isinstance(key, str) and key.startswith("live_")
    assert started["publish_url"] == f"{started['ingest_url']}/{key}"
    assert str(stream["playback_url"]).endswith(f"/live/{stream['id']}/master.m3u8")

    got = (await api.get(f"/api/streams/{stream['id']}")).json()
    assert got["id"] == stream["id"] and "stream_key" not in got and key not in str(got)

    r = await api.post(f"/api/streams/{stream['id']}/key", headers=auth)
    assert r.status_code == 200, r.text
    new_key = r.json()["stream_key"]
    assert new_key != key

    r = await api.post(f"/api/streams/{stream['id']}/stop", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "ended"
    assert r.json()["ended_at"] is not None
    again = await api.post(f"/api/streams/{stream['id']}/stop", headers=auth)
    assert again.status_code == 200 and again.json()["ended_at"] == r.json()["ended_at"]
    r = await api.post(f"/api/streams/{stream['id']}/key", headers=auth)
    assert_error(r, 409, "stream_ended")


async def test_keys_are_stored_hashed_and_rotation_revokes(
    api: httpx.AsyncClient, platform: RunningPlatform
) -> None:
    from streamscale.runtime import Resources

    auth = await signed_in(api)
    started = await _start(api, auth)
    stream = started["stream"]
    assert isinstance(stream, dict)
    old_key = str(started["stream_key"])
    store: Store = await Resources(platform.config).store()
    try:
        row = await store.get_stream(str(stream["id"]))
        assert row is not None and old_key not in repr(row)
        service = StreamService(store, platform.config)
        assert (await service.authorize_publish(old_key)).id == stream["id"]
        r = await api.post(f"/api/streams/{stream['id']}/key", headers=auth)
        new_key = r.json()["stream_key"]
        assert (await service.authorize_publish(new_key)).id == stream["id"]
        try:
            await service.authorize_publish(old_key)
        except Exception as exc:
            assert getattr(exc, "code", None) == "bad_stream_key"
        else:
            raise AssertionError("a rotated key still authorises publishing")
    finally:
        await store.close()


async def test_only_owner_may_stop_or_rotate(api: httpx.AsyncClient) -> None:
    owner = await signed_in(api, "owner")
    other = await signed_in(api, "other")
    stream = (await _start(api, owner))["stream"]
    assert isinstance(stream, dict)
    for path in ("stop", "key"):
        r = await api.post(f"/api/streams/{stream['id']}/{path}", headers=other)
        assert_error(r, 403, "not_stream_owner")
    r = await api.post(f"/api/streams/{stream['id']}/stop")
    assert_error(r, 401, "unauthorized")
    assert (await api.get(f"/api/streams/{stream['id']}")).json()["status"] == "created"


async def test_unknown_stream_is_404(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/api/streams/" + "0" * 32), 404, "stream_not_found")
    # Not an id at all: no route (so /api/streams/start is never taken for one).
    assert_error(await api.get("/api/streams/nope"), 404, "not_found")
    r = await api.get("/api/streams/start")
    assert_error(r, 405, "method_not_allowed")
    assert set(r.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


async def test_list_streams_by_owner_and_status(api: httpx.AsyncClient) -> None:
    auth = await signed_in(api, "lister")
    ids = [(await _start(api, auth))["stream"] for _ in range(3)]
    me = (await api.get("/api/users/me", headers=auth)).json()
    r = await api.get("/api/streams", params={"user_id": me["id"], "limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (await api.get("/api/streams", params={
        "user_id": me["id"], "cursor": page["next_cursor"]})).json()
    seen = [s["id"] for s in page["items"] + rest["items"]]
    assert sorted(seen) == sorted(s["id"] for s in ids if isinstance(s, dict))
    r = await api.get("/api/streams", params={"status": "bogus"})
    assert_error(r, 400, "validation_error")
    r = await api.get("/api/streams", params={"cursor": "!!garbage!!"})
    assert_error(r, 400, "invalid_cursor")
