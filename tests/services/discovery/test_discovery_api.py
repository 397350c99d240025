"""Discovery through the real gateway: search, live now, categories; bad queries are 4xx.

Streams are started over the API; going live and the viewer counts are written to the
store as the media path and the analytics service write them (set_stream_status,
set_viewer_count), so the ranking is known exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from streamscale.backends.storage import Store
from streamscale.runtime import Resources
from streamscale.services.clock import utcnow
from streamscale.testing import RunningPlatform

from ..helpers import assert_error, signed_in


@pytest.fixture
async def store(platform: RunningPlatform) -> AsyncIterator[Store]:
    resources = Resources(platform.config)
    try:
        yield await resources.store()
    finally:
        await resources.aclose()


async def _start(api: httpx.AsyncClient, auth: dict[str, str], title: str, category: str,
                 tags: list[str] | None = None) -> str:
    r = await api.post("/api/streams/start", headers=auth,
                       json={"title": title, "category": category, "tags": tags or []})
    assert r.status_code == 201, r.text
    return str(r.json()["stream"]["id"])


async def _live(store: Store, stream_id: str, viewers: int) -> None:
    assert await store.set_stream_status(stream_id, status="live", expected=("created",),
                                         at=utcnow())
    assert await store.set_viewer_count(stream_id, viewers)


@pytest.fixture
async def streams(api: httpx.AsyncClient, store: Store) -> dict[str, str]:
    alice = await signed_in(api, "alice_speed")
    bob = await signed_in(api, "bob_builds")
    made = {
        "mc": await _start(api, alice, "Minecraft hardcore", "Minecraft", ["survival"]),
        "speed": await _start(api, alice, "Celeste speedrun", "Celeste", ["any-percent"]),
        "house": await _start(api, bob, "Minecraft house tour", "Minecraft", ["creative"]),
        "chat": await _start(api, bob, "Morning coffee", "Just Chatting"),
    }
    await _live(store, made["mc"], 40)
    await _live(store, made["speed"], 300)
    await _live(store, made["house"], 7)
    return made


async def _search(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await api.get("/api/streams/search", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_search_finds_by_words_and_answers_the_stream_summary(
    api: httpx.AsyncClient, streams: dict[str, str]
) -> None:
    body = await _search(api, q="minec")
    assert {s["id"] for s in body["items"]} == {streams["mc"], streams["house"]}
    assert body["fuzzy"] is False and body["next_cursor"] is None
    one = (await api.get(f"/api/streams/{streams['mc']}")).json()
    found = next(s for s in body["items"] if s["id"] == streams["mc"])
    assert found == one  # the same summary as GET /api/streams/{id}
    assert {s["id"] for s in (await _search(api, q="alice"))["items"]} == {
        streams["mc"], streams["speed"]}  # the streamer's username
    assert {s["id"] for s in (await _search(api, q="percent"))["items"]} == {streams["speed"]}
    assert [s["id"] for s in (await _search(api, q="minecraft", sort="viewers"))["items"]] == [
        streams["mc"], streams["house"]]
    assert [s["id"] for s in (await _search(api, q="minecraft", tags="creative"))["items"]] == [
        streams["house"]]
    r = await api.get("/api/streams/search?tags=survival&tags=creative")
    assert r.json()["items"] == []  # every tag
    assert {s["id"] for s in (await _search(api, live="true"))["items"]} == {
        streams["mc"], streams["speed"], streams["house"]}
    typo = await _search(api, q="minecarft hardcore")
    assert typo["fuzzy"] is True and [s["id"] for s in typo["items"]] == [streams["mc"]]


async def test_search_pages_with_the_cursor(
    api: httpx.AsyncClient, streams: dict[str, str]
) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"sort": "recency", "limit": 1}
    while True:
        body = await _search(api, **params)
        seen += [s["id"] for s in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == [streams[k] for k in ("chat", "house", "speed", "mc")]


async def test_live_now_and_categories(api: httpx.AsyncClient, streams: dict[str, str],
                                       store: Store) -> None:
    r = await api.get("/api/streams/live")
    assert r.status_code == 200, r.text
    assert [s["id"] for s in r.json()["items"]] == [streams["speed"], streams["mc"],
                                                     streams["house"]]
    r = await api.get("/api/streams/live", params={"category": "Minecraft", "limit": 1})
    assert [s["id"] for s in r.json()["items"]] == [streams["mc"]]
    r = await api.get("/api/streams/live", params={"category": "Minecraft",
                                                   "cursor": r.json()["next_cursor"]})
    assert [s["id"] for s in r.json()["items"]] == [streams["house"]]
    r = await api.get("/api/categories")
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {"category": "Celeste", "live_streams": 1, "viewers": 300},
        {"category": "Minecraft", "live_streams": 2, "viewers": 47},
    ]
    assert await store.set_viewer_count(streams["house"], 500)  # the edges' next sample
    r = await api.get("/api/streams/live")
    assert (r.json()["items"][0]["id"], r.json()["items"][0]["viewer_count"]) == (
        streams["house"], 500)


@pytest.mark.parametrize(("path", "code"), [
    ("/api/streams/search?limit=1000000", "validation_error"),
    ("/api/streams/search?limit=0", "validation_error"),
    ("/api/streams/search?limit=-1", "validation_error"),
    ("/api/streams/search?limit=ten", "validation_error"),
    ("/api/streams/search?limit=99999999999999999999999999", "validation_error"),
    ("/api/streams/search?cursor=not-a-cursor", "invalid_cursor"),
    ("/api/streams/search?cursor=" + "A" * 150, "invalid_cursor"),
    ("/api/streams/search?cursor=" + "A" * 500, "validation_error"),
    ("/api/streams/search?cursor=czF8dmlld2Vyc3xlfDF8", "invalid_cursor"),
    ("/api/streams/search?q=" + "x" * 101, "validation_error"),
    ("/api/streams/search?q=a+b+c+d+e+f+g+h+i", "validation_error"),
    ("/api/streams/search?q=%ED%A0%80", "invalid_unicode"),  # a lone surrogate, as UTF-8
    ("/api/streams/search?q=%FF%FE", "invalid_unicode"),
    ("/api/streams/search?category=%ED%B0%80x", "invalid_unicode"),
    ("/api/streams/search?q=a&q=b", "validation_error"),
    ("/api/streams/search?sort=random", "validation_error"),
    ("/api/streams/search?live=maybe", "validation_error"),
    ("/api/streams/search?tags=%22%3B--", "validation_error"),
    ("/api/streams/search?" + "&".join(f"tags=t{i}" for i in range(11)), "validation_error"),
    ("/api/streams/search?category=", "validation_error"),
    ("/api/streams/search?category=" + "c" * 51, "validation_error"),
    ("/api/streams/search?admin=1", "validation_error"),
    ("/api/streams/live?limit=101", "validation_error"),
    ("/api/streams/live?cursor=%00", "invalid_cursor"),
    ("/api/categories?limit=1000", "validation_error"),
])
async def test_bad_queries_are_4xx(api: httpx.AsyncClient, path: str, code: str) -> None:
    assert_error(await api.get(path), 400, code)


@pytest.mark.parametrize("q", [
    '"', "*", "NEAR(", "NEAR(a b)", "OR", "a OR b", "AND NOT", "'", "' OR '1'='1",
    "'; DROP TABLE streams; --", 'minecraft" OR "', "mine*", "title:x", "^x", "a:*", "!",
    "&|", "\\", "%", "_", "(", ")", "{", "-minecraft", "+", "\u0000", "🎮",
])
async def test_injection_strings_are_text(
    api: httpx.AsyncClient, streams: dict[str, str], q: str
) -> None:
    r = await api.get("/api/streams/search", params={"q": q})
    assert r.status_code == 200, r.text
    if q in ("mine*", "-minecraft"):  # * and - are separators, not operators
        assert {s["id"] for s in r.json()["items"]} == {streams["mc"], streams["house"]}
    if q == 'minecraft" OR "':  # "or" is a word to find like any other
        assert r.json()["items"] == []


_PARAM_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=120),
    st.sampled_from(["", "0", "-1", "101", "1e3", "true", "relevance", "viewers", "recency",
                     "minecraft", '"', "NEAR(", "' OR 1=1 --", "czE=", "x" * 300]),
    st.integers(-2, 200).map(str),
)
_NAMES = st.sampled_from(["q", "category", "tags", "live", "sort", "cursor", "limit", "zzz"])


@st.composite
def _query_strings(draw: st.DrawFn) -> str:
    """Query strings near the real ones, percent-encoded, sometimes with raw escapes
    that are not UTF-8 (lone surrogates, stray bytes)."""
    pairs = draw(st.lists(st.tuples(_NAMES, _PARAM_TEXT), max_size=6))
    parts = [f"{quote(k)}={quote(val, safe='')}" for k, val in pairs]
    if draw(st.booleans()):
        parts.append(f"{draw(_NAMES)}={draw(st.sampled_from(['%ED%A0%80', '%C3', '%FF']))}")
    return "&".join(parts)


async def test_any_query_string_gets_a_clean_answer(
    api: httpx.AsyncClient, streams: dict[str, str]
) -> None:
    """Property: whatever the query string of the three routes, the answer is 200 or a
    4xx in the one error shape, never a 5xx. Hypothesis drives a blocking client in a
    thread while the server runs on this trio loop."""

    @settings(max_examples=150, deadline=None, database=None)
    @given(path=st.sampled_from(["/api/streams/search", "/api/streams/live",
                                 "/api/categories"]), query=_query_strings())
    def check(client: httpx.Client, path: str, query: str) -> None:
        r = client.get(f"{path}?{query}")
        assert r.status_code < 500, (query, r.text)
        if r.status_code != 200:
            assert_error(r, r.status_code)

    def run() -> None:
        with httpx.Client(base_url=api.base_url, timeout=30) as client:
            check(client)

    await trio.to_thread.run_sync(run)
