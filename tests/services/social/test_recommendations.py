"""Following live, watch history and recommendations (issue 14) through the real gateway.

Streams are made live and given viewer counts in the store, as the ingest and the
analytics service would (their own tests cover how); everything else goes over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from streamscale.backends.storage import Store
from streamscale.runtime import Resources
from streamscale.testing import RunningPlatform

from ..helpers import assert_error, signed_in


@pytest.fixture
async def store(platform: RunningPlatform) -> AsyncIterator[Store]:
    opened = await Resources(platform.config).store()
    try:
        yield opened
    finally:
        await opened.close()


class World:
    def __init__(self, api: httpx.AsyncClient, store: Store) -> None:
        self.api = api
        self.store = store
        self.auth: dict[str, dict[str, str]] = {}
        self.ids: dict[str, str] = {}
        self.streams: dict[str, str] = {}

    async def user(self, name: str) -> None:
        self.auth[name] = await signed_in(self.api, name)
        me = (await self.api.get("/api/users/me", headers=self.auth[name])).json()
        self.ids[name] = me["id"]

    async def follow(self, fan: str, star: str) -> None:
        r = await self.api.put(f"/api/users/{self.ids[star]}/follow", headers=self.auth[fan])
        assert r.status_code == 200, r.text

    async def stream(self, owner: str, label: str, category: str, *, status: str = "live",
                     viewers: int = 0) -> str:
        r = await self.api.post("/api/streams/start", headers=self.auth[owner],
                                json={"title": label, "category": category})
        assert r.status_code == 201, r.text
        stream_id: str = r.json()["stream"]["id"]
        self.streams[label] = stream_id
        now = datetime.now(UTC)
        if status in ("live", "ended"):
            assert await self.store.set_stream_status(stream_id, status="live",
                                                      expected=("created",), at=now)
            assert await self.store.set_viewer_count(stream_id, viewers)
        if status == "ended":
            assert await self.store.set_stream_status(stream_id, status="ended",
                                                      expected=("live",), at=now)
        return stream_id

    def label(self, stream_id: str) -> str:
        return next(k for k, v in self.streams.items() if v == stream_id)


@pytest.fixture
async def world(api: httpx.AsyncClient, store: Store) -> World:
    """me follows ann (chess, live), bob (music, live), cat (chess, ended) and dan (art,
    not started); the others are not followed."""
    w = World(api, store)
    for name in ("meg", "ann", "bob", "cat", "dan", "xavier", "yves", "zoe", "walt", "vera"):
        await w.user(name)
    for star in ("ann", "bob", "cat", "dan"):
        await w.follow("meg", star)
    await w.stream("cat", "cat-chess", "chess", status="ended")  # older than ann's
    await w.stream("ann", "ann-chess", "chess", viewers=30)
    await w.stream("bob", "bob-music", "music", viewers=50)
    await w.stream("dan", "dan-art", "art", status="created")
    await w.stream("xavier", "x-chess", "chess", viewers=80)
    await w.stream("yves", "y-music", "music", viewers=10)
    await w.stream("zoe", "z-art", "art", viewers=200)
    await w.stream("walt", "w-cooking", "cooking", viewers=40)
    await w.stream("vera", "v-cooking", "cooking", viewers=5)
    await w.stream("vera", "v-knitting", "knitting", viewers=500)  # in no category of mine
    await w.stream("meg", "my-chess", "chess", viewers=1000)  # never recommended to me
    return w


async def test_following_live_lists_followed_live_streams_by_viewers(world: World) -> None:
    r = await world.api.get("/api/me/following/live", headers=world.auth["meg"])
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [world.label(i["id"]) for i in items] == ["bob-music", "ann-chess"]
    bob = items[0]
    assert bob["streamer"] == {"id": world.ids["bob"], "username": "bob",
                               "display_name": bob["streamer"]["display_name"]}
    assert (bob["viewer_count"], bob["category"], bob["title"]) == (50, "music", "bob-music")
    assert bob["playback_url"].endswith(f"/live/{bob['id']}/master.m3u8")
    r = await world.api.get("/api/me/following/live", headers=world.auth["meg"],
                            params={"limit": 1})
    assert [world.label(i["id"]) for i in r.json()["items"]] == ["bob-music"]
    r = await world.api.get("/api/me/following/live", headers=world.auth["zoe"])
    assert r.json() == {"items": []}


async def test_recommendations_with_reasons(world: World) -> None:
    me = world.auth["meg"]
    for label in ("w-cooking", "v-cooking", "x-chess"):
        r = await world.api.post(f"/api/streams/{world.streams[label]}/watch", headers=me)
        assert r.status_code == 200, r.text
    r = await world.api.get("/api/me/recommendations", headers=me)
    assert r.status_code == 200, r.text
    body = r.json()

    def rows(group: str) -> list[tuple[str, str, str]]:
        return [(world.label(i["stream"]["id"]), i["basis"], i["reason"]) for i in body[group]]

    assert rows("because_you_follow") == [
        ("bob-music", "followed_streamer_live", "because you follow bob, who is live now"),
        ("ann-chess", "followed_streamer_live", "because you follow ann, who is live now"),
        ("z-art", "followed_streamer_category", "because you follow dan, who streams art"),
        ("x-chess", "followed_streamer_category", "because you follow ann, who streams chess"),
        ("y-music", "followed_streamer_category", "because you follow bob, who streams music"),
    ]
    # x-chess (watched, chess) is in the first group already: not repeated here
    assert rows("popular_in_categories_you_watch") == [
        ("w-cooking", "watched_category",
         "popular in cooking, which you watch (2 streams watched)"),
        ("v-cooking", "watched_category",
         "popular in cooking, which you watch (2 streams watched)"),
    ]
    r = await world.api.get("/api/me/recommendations", headers=me, params={"limit": 3})
    small = r.json()
    assert [world.label(i["stream"]["id"]) for i in small["because_you_follow"]] == [
        "bob-music", "ann-chess", "z-art"]
    # with the first group cut at 3, x-chess is recommended for the category watched
    assert [world.label(i["stream"]["id"]) for i in small["popular_in_categories_you_watch"]
            ] == ["x-chess", "w-cooking", "v-cooking"]


async def test_a_newcomer_gets_empty_groups(world: World) -> None:
    await world.user("newcomer")
    r = await world.api.get("/api/me/recommendations", headers=world.auth["newcomer"])
    assert r.json() == {"because_you_follow": [], "popular_in_categories_you_watch": []}


async def test_watch_records_history_and_refuses_what_cannot_be_watched(world: World) -> None:
    me = world.auth["meg"]
    for label in ("w-cooking", "cat-chess", "w-cooking"):  # an ended stream counts too
        r = await world.api.post(f"/api/streams/{world.streams[label]}/watch", headers=me)
        assert r.status_code == 200, r.text
    assert r.json()["watches"] == 2 and r.json()["category"] == "cooking"
    history = (await world.api.get("/api/me/history", headers=me, params={"limit": 1})).json()
    assert [world.label(i["stream_id"]) for i in history["items"]] == ["w-cooking"]
    rest = (await world.api.get("/api/me/history", headers=me,
                                params={"cursor": history["next_cursor"]})).json()
    assert [world.label(i["stream_id"]) for i in rest["items"]] == ["cat-chess"]
    assert rest["next_cursor"] is None
    r = await world.api.post(f"/api/streams/{world.streams['dan-art']}/watch", headers=me)
    assert_error(r, 409, "stream_not_started")
    assert_error(await world.api.post(f"/api/streams/{'0' * 32}/watch", headers=me),
                 404, "stream_not_found")
    r = await world.api.post(f"/api/streams/{world.streams['w-cooking']}/watch")
    assert_error(r, 401, "unauthorized")
    assert_error(await world.api.get("/api/me/history", headers=me,
                                     params={"cursor": "bogus"}), 400)


@pytest.mark.parametrize("path", ["/api/me/following/live", "/api/me/recommendations",
                                  "/api/me/history"])
async def test_me_routes_need_a_token_and_bound_their_size(
    api: httpx.AsyncClient, path: str
) -> None:
    assert_error(await api.get(path), 401, "unauthorized")
    auth = await signed_in(api, "bounded")
    for limit in ("0", "101", "x", "1e9"):
        r = await api.get(path, headers=auth, params={"limit": limit})
        assert_error(r, 400, "validation_error")


async def test_the_spec_documents_the_social_routes(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/api/openapi.json")).json()["paths"]
    for path, method in [("/api/me/notifications", "get"), ("/api/me/following/live", "get"),
                         ("/api/me/recommendations", "get"), ("/api/me/history", "get"),
                         ("/api/streams/{stream_id}/watch", "post")]:
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}], path
        assert {"200", "401"} <= set(operation["responses"]), path
    ok = paths["/api/me/notifications"]["get"]["responses"]["200"]["content"]
    assert list(ok) == ["text/event-stream"]
    assert "playback_url" in str(ok["text/event-stream"]["x-event-data"])
    assert paths["/api/me/recommendations"]["get"]["parameters"][0]["name"] == "limit"
