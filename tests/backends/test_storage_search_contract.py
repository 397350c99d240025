"""The search part of the `Store` contract (issue 14), on every backend.

Parametrised by `store_url` (conftest): SQLite file, SQLite in memory, PostgreSQL. The
same queries give the same streams on each: SQLite answers from FTS5, PostgreSQL from a
tsvector index, both kept by triggers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import trio
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, text, update
from test_storage_contract import T0, make_stream, make_user

from streamscale.backends.storage import (
    InvalidCursor,
    SqlStore,
    Stream,
    User,
    _sql_search,
    migrate,
    open_store,
    query_words,
)
from streamscale.backends.storage._engine import alembic_config, make_engine
from streamscale.backends.storage._tables import streams, users


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with await open_store(store_url) as opened:
        yield opened


async def _add(store: SqlStore, user: User, **overrides: object) -> Stream:
    stream = make_stream(user.id, **overrides)
    await store.create_stream(stream)
    return stream


async def _user(store: SqlStore, username: str, display_name: str | None = None) -> User:
    user = make_user(username, display_name=display_name or username.title())
    await store.create_user(user)
    return user


async def _ids(store: SqlStore, query: str, **kwargs: object) -> set[str]:
    page = await store.search_streams(query=query, limit=100, **kwargs)  # type: ignore[arg-type]
    return {s.id for s in page.items}


async def _sql(store: SqlStore, stmt: object) -> None:
    def work() -> None:
        with store.engine.begin() as conn:
            conn.execute(stmt)  # type: ignore[call-overload]

    await trio.to_thread.run_sync(work)


@pytest.fixture(params=["narrow", "broad"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a page is found: joining the matches and sorting them (few matches), or
    walking the sort order and keeping the matches (thousands, here made to happen)."""
    monkeypatch.setattr(_sql_search, "_BROAD_MATCHES", 10**9 if request.param == "narrow" else 0)
    return str(request.param)


@pytest.fixture
async def corpus(store: SqlStore) -> dict[str, Stream]:
    return await _corpus(store)


async def _corpus(store: SqlStore) -> dict[str, Stream]:
    if await store.get_user_by_username("alice_plays") is not None:
        return await _corpus_again(store)  # a later hypothesis example, same database
    alice = await _user(store, "alice_plays", "Alice Wonder")
    bob = await _user(store, "bobcraft", "Bob")
    return {
        "mc": await _add(store, alice, title="Minecraft hardcore day 100",
                         category="Minecraft", tags=("survival", "en"), status="live",
                         viewer_count=50, created_at=T0),
        "speed": await _add(store, alice, title="Speedrun practice", category="Celeste",
                            tags=("any-percent",), status="live", viewer_count=200,
                            created_at=T0 + timedelta(minutes=1)),
        "chess": await _add(store, bob, title="Chess with viewers", category="Chess",
                            tags=("blitz",), status="ended", created_at=T0 + timedelta(minutes=2)),
        "cafe": await _add(store, bob, title="Café talk, NEAR(the) \"end\" OR not",
                           category="Just Chatting", tags=(), status="live", viewer_count=5,
                           created_at=T0 + timedelta(minutes=3)),
        "craft": await _add(store, bob, title="Building a castle", category="Minecraft",
                            tags=("creative",), status="created",
                            created_at=T0 + timedelta(minutes=4)),
    }


async def _corpus_again(store: SqlStore) -> dict[str, Stream]:
    found = {s.title.split()[0]: s for s in (await store.list_streams(limit=100)).items}
    keys = {"Minecraft": "mc", "Speedrun": "speed", "Chess": "chess", "Café": "cafe",
            "Building": "craft"}
    return {keys[title]: stream for title, stream in found.items()}


async def test_words_match_as_prefixes_in_every_field(
    store: SqlStore, corpus: dict[str, Stream], plan: str
) -> None:
    c = {k: s.id for k, s in corpus.items()}
    assert await _ids(store, "minecraft") == {c["mc"], c["craft"]}  # title, category
    assert await _ids(store, "mine") == {c["mc"], c["craft"]}  # prefix
    assert await _ids(store, "speedr") == {c["speed"]}
    assert await _ids(store, "survival") == {c["mc"]}  # tag
    assert await _ids(store, "percent") == {c["speed"]}  # a tag's word
    assert await _ids(store, "alice") == {c["mc"], c["speed"]}  # username alice_plays
    assert await _ids(store, "wonder") == {c["mc"], c["speed"]}  # display name
    assert await _ids(store, "bobcr") == {c["chess"], c["cafe"], c["craft"]}
    assert await _ids(store, "MINECRAFT hard") == {c["mc"]}  # every word, any case
    assert await _ids(store, "minecraft castle") == {c["craft"]}
    assert await _ids(store, "cafe") == {c["cafe"]}  # accents folded
    assert await _ids(store, "café") == {c["cafe"]}
    assert await _ids(store, "just chatting") == {c["cafe"]}


@pytest.mark.parametrize("query", [
    '"', '""', "*", "**", "NEAR(", "NEAR(the end)", "OR", "AND", "NOT", "(", ")", "^",
    ":*", "!", "&|", "-", "'", "''", "' OR 1=1 --", "'; DROP TABLE streams; --",
    'Café" OR "x', "end*", "col:the", "title:end", "{title}: end", "\\", "%", "_", "\x00",
    "🎮", "ß", "İ",
])
async def test_syntax_in_a_query_is_text(
    store: SqlStore, corpus: dict[str, Stream], query: str
) -> None:
    """FTS5 and tsquery operators and SQL quotes are separators: never syntax, never an
    error, and a result matches the query's words like any other."""
    page = await store.search_streams(query=query, limit=100)
    words = query_words(query)
    if not words:  # nothing to match: every stream, most viewers first
        assert len(page.items) == len(corpus)
        return
    if not page.fuzzy:
        for stream in page.items:
            assert _reference_match(stream, words, _streamer(corpus, stream)), stream.title
    assert (await store.search_streams(query="chess")).items  # the index is intact


def _streamer(corpus: dict[str, Stream], stream: Stream) -> str:
    alice_streams = {corpus["mc"].id, corpus["speed"].id}
    return "alice_plays Alice Wonder" if stream.id in alice_streams else "bobcraft Bob"


def _reference_match(stream: Stream, words: list[str], streamer: str) -> bool:
    """What a match means, in Python: every word begins a word of some field."""
    document = " ".join([stream.title, *stream.tags, stream.category, streamer])
    indexed = set(query_words(document))
    return all(any(t.startswith(w) if len(w) >= 2 else t == w for t in indexed)
               for w in words)


async def test_filters(store: SqlStore, corpus: dict[str, Stream], plan: str) -> None:
    c = {k: s.id for k, s in corpus.items()}
    assert await _ids(store, "", category="Minecraft") == {c["mc"], c["craft"]}
    assert await _ids(store, "", category="minecraft") == set()  # exact, as stored
    assert await _ids(store, "", live_only=True) == {c["mc"], c["speed"], c["cafe"]}
    assert await _ids(store, "minecraft", live_only=True) == {c["mc"]}
    assert await _ids(store, "", tags=["survival"]) == {c["mc"]}
    assert await _ids(store, "", tags=["survival", "en"]) == {c["mc"]}
    assert await _ids(store, "", tags=["survival", "blitz"]) == set()  # every tag
    assert await _ids(store, "", tags=["surv"]) == set()  # whole tags
    assert await _ids(store, "", tags=['%"']) == set()
    assert await _ids(store, "", tags=["_n"]) == set()  # LIKE wildcards are text


async def test_sorts(store: SqlStore, corpus: dict[str, Stream], plan: str) -> None:
    c = {k: s.id for k, s in corpus.items()}
    page = await store.search_streams(live_only=True, sort="viewers")  # "live now"
    assert [s.id for s in page.items] == [c["speed"], c["mc"], c["cafe"]]
    page = await store.search_streams(sort="recency")
    assert [s.id for s in page.items] == [c[k] for k in ("craft", "cafe", "chess", "speed", "mc")]
    page = await store.search_streams(query="minecraft", sort="recency")
    assert [s.id for s in page.items] == [c["craft"], c["mc"]]
    # relevance: a title hit outranks a category-only hit, whatever the viewers
    page = await store.search_streams(query="castle minecraft", sort="relevance")
    assert [s.id for s in page.items] == [c["craft"]]
    owner = await store.get_user_by_username("bobcraft")
    assert owner is not None
    title_hit = await _add(store, owner, title="Celeste any percent", category="Platformer",
                           status="live", viewer_count=1)
    page = await store.search_streams(query="celeste", sort="relevance")
    assert [s.id for s in page.items] == [title_hit.id, c["speed"]]
    page = await store.search_streams(query="celeste", sort="viewers")
    assert [s.id for s in page.items] == [c["speed"], title_hit.id]


@pytest.mark.parametrize("sort", ["relevance", "viewers", "recency"])
async def test_pages_cover_every_match_once_in_order(
    store: SqlStore, sort: str, plan: str
) -> None:
    owner = await _user(store, "pager")
    made = []
    for i in range(23):  # equal viewers and times across pages: ties broken by id
        made.append(await _add(store, owner, title=f"retro {'retro ' * (i % 3)}game {i}",
                               viewer_count=i % 4, status="live",
                               created_at=T0 + timedelta(minutes=i % 5)))
    whole = await store.search_streams(query="retro", sort=sort, limit=100)  # type: ignore[arg-type]
    assert len(whole.items) == 23 and whole.next_cursor is None
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.search_streams(query="retro", sort=sort, cursor=cursor,  # type: ignore[arg-type]
                                          limit=4)
        seen += [s.id for s in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [s.id for s in whole.items]
    assert len(set(seen)) == 23


@pytest.mark.parametrize("cursor", [
    "", "x", "!!!", "czE=", "s1|viewers|e|1|", "\ud800", "a" * 500,
])
async def test_bad_cursor(store: SqlStore, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await store.search_streams(sort="viewers", cursor=cursor)


async def test_cursor_of_another_sort_is_refused(store: SqlStore) -> None:
    owner = await _user(store, "cursors")
    for _ in range(3):
        await _add(store, owner, title="loop")
    page = await store.search_streams(query="loop", sort="viewers", limit=1)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await store.search_streams(query="loop", sort="recency", cursor=page.next_cursor)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"query": "x" * 101}, "characters"),
    ({"query": "a b c d e f g h i"}, "words"), ({"sort": "random"}, "sort"),
])
async def test_out_of_bounds(store: SqlStore, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await store.search_streams(**kwargs)  # type: ignore[arg-type]


async def test_typos_find_the_nearest_indexed_words(
    store: SqlStore, corpus: dict[str, Stream]
) -> None:
    c = {k: s.id for k, s in corpus.items()}
    exact = await store.search_streams(query="minecraft")
    assert not exact.fuzzy
    for typo in ("minecarft", "minecrft", "mincraft", "speedrum practise", "chss"):
        page = await store.search_streams(query=typo)
        assert page.fuzzy, typo
        assert {s.id for s in page.items} <= {c["mc"], c["craft"], c["speed"], c["chess"]}
        assert page.items, typo
    assert not (await store.search_streams(query="xqzvbn")).items
    assert not (await store.search_streams(query="chs")).items  # under 4 letters: as typed
    assert not (await store.search_streams(query="minecraft xqzvbn")).items


async def test_fuzzy_pages_stay_fuzzy(store: SqlStore) -> None:
    owner = await _user(store, "fuzzy")
    for i in range(5):
        await _add(store, owner, title=f"valorant ranked {i}")
    page = await store.search_streams(query="valroant", limit=2, sort="recency")
    seen = [s.id for s in page.items]
    while page.next_cursor is not None:
        page = await store.search_streams(query="valroant", limit=2, sort="recency",
                                          cursor=page.next_cursor)
        assert page.fuzzy
        seen += [s.id for s in page.items]
    assert len(set(seen)) == 5


async def test_index_follows_renames_deletions_and_new_streams(store: SqlStore) -> None:
    user = await _user(store, "renamer", "Old Name")
    stream = await _add(store, user, title="Cooking")
    assert await _ids(store, "old name") == {stream.id}
    await store.update_user(user.id, display_name="Chef Bright", updated_at=T0)
    assert await _ids(store, "old name") == set()
    assert await _ids(store, "chef bright cooking") == {stream.id}
    await _sql(store, update(streams).where(streams.c.id == stream.id).values(title="Baking"))
    assert await _ids(store, "cooking") == set()
    assert await _ids(store, "baking") == {stream.id}
    assert await store.delete_user(user.id, at=T0)
    assert await _ids(store, "renamer") == set()  # the erased username is not searchable
    assert await _ids(store, "chef") == set()
    assert await _ids(store, "baking") == {stream.id}  # the stream's record stays
    await _sql(store, delete(streams).where(streams.c.id == stream.id))
    assert await _ids(store, "baking") == set()


async def test_live_categories(store: SqlStore, corpus: dict[str, Stream]) -> None:
    got = await store.list_live_categories()
    assert [(c.category, c.live_streams, c.viewers) for c in got] == [
        ("Celeste", 1, 200), ("Minecraft", 1, 50), ("Just Chatting", 1, 5)]
    owner = await store.get_user_by_username("bobcraft")
    assert owner is not None
    await _add(store, owner, title="more", category="Minecraft", status="live",
               viewer_count=160)
    got = await store.list_live_categories(limit=2)
    assert [(c.category, c.live_streams, c.viewers) for c in got] == [
        ("Minecraft", 2, 210), ("Celeste", 1, 200)]
    await store.set_stream_status(corpus["speed"].id, status="ended", expected=("live",),
                                  at=T0)
    assert "Celeste" not in {c.category for c in await store.list_live_categories()}


async def test_migration_indexes_existing_streams(file_url: str) -> None:
    migrate(file_url)
    engine = make_engine(file_url, threads=1)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
        with engine.begin() as conn:
            user = make_user("before")
            conn.execute(users.insert().values(
                id=user.id, username=user.username, username_key="before",
                email=user.email, password_hash="x", display_name="Early Bird", bio="",
                created_at=T0, updated_at=T0))
            conn.execute(streams.insert().values(
                id="a" * 32, user_id=user.id, title="Origami", category="Art", tags="[]",
                quality="source", status="live", key_hash="k", key_rotated_at=T0,
                created_at=T0, viewer_count=3, peak_viewers=3))
            names = {r[0] for r in conn.execute(text(
                "SELECT name FROM sqlite_master" if conn.dialect.name == "sqlite"
                else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))}
            assert not {n for n in names if n.startswith("stream_search")}
    finally:
        engine.dispose()
    async with await open_store(file_url) as store:  # upgrades to head
        assert await _ids(store, "origami early") == {"a" * 32}


_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
# Words of the corpus, their pieces and typos, accents, and every operator of both syntaxes
_QUERY_TEXT = st.lists(st.one_of(
    st.sampled_from(["mine", "craft", "minecraft", "speed", "alice", "bob", "café", "cafe",
                     "chess", "c", "e", "day", "100", "1", "en", "any", "percent", "hard",
                     "minecarft", "chss", "NEAR", "OR", "AND", "NOT", "talk", "xyz"]),
    st.sampled_from(list(' "*()^:-+!&|<>\'%_,.;=~{}[]/@#$\t\n')),
    st.text(st.characters(codec="latin-1", blacklist_categories=["Cc"]), max_size=4),
), max_size=12).map("".join)


@_SETTINGS
@given(query=st.text(st.characters(blacklist_categories=["Cs"]), max_size=100))
async def test_any_text_is_answered_or_refused_cleanly(store_url: str, query: str) -> None:
    """Property: any text gets a page, or ValueError for too many words; never a
    database error."""
    async with await open_store(store_url, threads=2) as store:
        await _corpus(store)
        await _any_text(store, query)


async def _any_text(store: SqlStore, query: str) -> None:
    if len(query_words(query)) > 8:
        with pytest.raises(ValueError, match="words"):
            await store.search_streams(query=query)
        return
    await store.search_streams(query=query, limit=100)


@_SETTINGS
@given(query=_QUERY_TEXT)
async def test_matches_are_what_the_words_say(store_url: str, query: str) -> None:
    """Property: unless fuzzy, a page holds exactly the streams whose fields have a word
    beginning with each word of the query (a one-letter word: that word)."""
    async with await open_store(store_url, threads=2) as store:
        await _matches(store, await _corpus(store), query)


async def _matches(store: SqlStore, corpus: dict[str, Stream], query: str) -> None:
    words = query_words(query)
    if len(words) > 8 or len(query) > 100:
        return
    page = await store.search_streams(query=query, limit=100)
    if words and not page.fuzzy:
        for stream in page.items:
            assert _reference_match(stream, words, _streamer(corpus, stream))
        expected = {s.id for s in corpus.values()
                    if _reference_match(s, words, _streamer(corpus, s))}
        assert {s.id for s in page.items} == expected


async def test_replace_keeps_streams_distinct(store: SqlStore) -> None:
    """Two streams of one user with the same title are two results."""
    owner = await _user(store, "twins")
    one = await _add(store, owner, title="Same")
    two = await _add(store, owner, **{"title": "Same", "key_hash": one.key_hash[::-1]})
    assert await _ids(store, "same") == {one.id, two.id}


async def test_sqlite_index_rebuilds_itself_if_rowids_drift(sqlite_url: str) -> None:
    """SQLite joins the index on rowid; if the rowids stop pointing at the streams they
    indexed (VACUUM may renumber them), the next search notices and rebuilds."""
    async with await open_store(sqlite_url) as store:
        owner = await _user(store, "drifter")
        one = await _add(store, owner, title="Pottery wheel")
        two = await _add(store, owner, title="Pottery kiln")

        def swap() -> None:
            with store.engine.begin() as conn:
                rows = conn.execute(text(
                    "SELECT rowid, stream_id, title, tags, category, streamer "
                    "FROM stream_search WHERE stream_search MATCH 'pottery'")).all()
                conn.execute(text("DELETE FROM stream_search WHERE stream_search MATCH 'pottery'"))
                for row, other in zip(rows, reversed(rows), strict=True):
                    conn.execute(text(
                        "INSERT INTO stream_search (rowid, stream_id, title, tags, category, "
                        "streamer) VALUES (:r, :i, :t, :g, :c, :s)"),
                        {"r": other.rowid, "i": row.stream_id, "t": row.title, "g": row.tags,
                         "c": row.category, "s": row.streamer})

        await trio.to_thread.run_sync(swap)
        page = await store.search_streams(query="pottery wheel")
        assert [s.id for s in page.items] == [one.id]
        assert await _ids(store, "kiln") == {two.id}
