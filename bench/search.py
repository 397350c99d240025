"""Benchmark stream search with 100,000 streams indexed, on SQLite and on PostgreSQL.

    .venv/bin/python bench/search.py [--streams 100000] [--repeat 40] [--backends sqlite,postgres]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

Loads a made-up but realistic catalogue (seeded: Zipf categories, titles from game and
chat words, tags, 10,000 streamers, 5 % live with Zipf viewers) through the real schema
(the search index is filled by its triggers), then times `Store.search_streams` for a
set of realistic queries, p50 and p95 over `--repeat` runs each, beside the peer: a
plain `lower(field) LIKE '%word%'` query over the same fields with the same filters,
sort (viewers) and page size, in the same run, interleaved with it.

Both answers are checked against the matches computed in Python from the catalogue: a
ratio is printed only when search and peer both return the expected page; otherwise the
line says which one differed (the typo query: the peer finds nothing, so no ratio).
PostgreSQL runs in a fresh schema, dropped afterwards. It prints; it never asserts.
The machine may be shared with other work: compare the ratios, not the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio
from sqlalchemy import text

from streamscale.backends.storage import SqlStore, Stream, _rows, open_store, query_words
from streamscale.backends.storage._tables import streams as streams_table
from streamscale.backends.storage._tables import users as users_table

PAGE = 20
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CATEGORIES = [
    "Just Chatting", "Minecraft", "Valorant", "League of Legends", "Counter-Strike",
    "Fortnite", "Grand Theft Auto V", "Elden Ring", "Celeste", "Chess", "Music", "Art",
    "Apex Legends", "Dota", "Overwatch", "Hearthstone", "Rocket League", "Stardew Valley",
    "Hollow Knight", "Baldurs Gate", "Cooking", "Science and Technology", "Pokemon",
    "Mario Kart", "Zelda", "Dark Souls", "Hades", "Terraria", "Factorio", "Rust",
]
WORDS = [
    "ranked", "grind", "chill", "stream", "road", "tournament", "practice", "viewers",
    "late", "night", "morning", "coffee", "build", "survival", "hardcore", "challenge",
    "duo", "squad", "solo", "tips", "learning", "first", "time", "playthrough", "blind",
    "record", "world", "speedrun", "casual", "friends", "giveaway", "highlights", "tryhard",
    "marathon", "charity", "relaxing", "beats", "lofi", "painting", "drawing", "sketch",
    "recipe", "kitchen", "opening", "endgame", "tactics", "puzzle", "boss", "raid",
    "dungeon", "speed", "glitchless", "modded", "vanilla", "creative", "season", "patch",
    "update", "review", "community", "games", "subscriber", "special", "weekend",
]
TAGS = ["english", "deutsch", "espanol", "francais", "competitive", "cozy", "educational",
        "family", "music", "irl", "retro", "indie", "esports", "coop", "pvp", "pve",
        "beginner", "veteran", "sober", "chatty"]
SYLLABLES = ["ka", "lo", "mi", "ra", "zen", "tor", "vex", "qui", "no", "sha", "dri", "fu",
             "bel", "gor", "pix", "yu", "wen", "tam", "osk", "lur"]


@dataclass(frozen=True, kw_only=True)
class Query:
    name: str
    q: str
    live: bool = False
    category: str | None = None


QUERIES = [
    Query(name="category word", q="minecraft"),
    Query(name="two words", q="valorant ranked"),
    Query(name="prefix", q="speedr"),
    Query(name="chat words", q="chill coffee"),
    Query(name="three words", q="elden ring blind"),
    Query(name="streamer prefix", q="{streamer}"),
    Query(name="live only", q="ranked", live=True),
    Query(name="in category", q="hardcore", category="Minecraft"),
    Query(name="rare word", q="glitchless marathon"),
    Query(name="typo", q="minecarft"),
]


@dataclass(kw_only=True)
class Catalogue:
    users: list[dict[str, Any]] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # user id -> "username display"


def make_catalogue(count: int, seed: int = 14) -> Catalogue:
    rng = random.Random(seed)
    cat = Catalogue()
    for i in range(max(10, count // 10)):
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
        username = f"{name}_{i}"
        display = name.title()
        uid = uuid.UUID(int=rng.getrandbits(128)).hex
        cat.users.append({
            "id": uid, "username": username, "username_key": username.lower(),
            "email": f"{username}@example.com", "password_hash": "x", "display_name": display,
            "bio": "", "created_at": T0, "updated_at": T0, "deleted_at": None})
        cat.names[uid] = f"{username} {display}"
    cat_weights = [1 / (k + 1) for k in range(len(CATEGORIES))]
    for i in range(count):
        category = rng.choices(CATEGORIES, cat_weights)[0]
        words = rng.sample(WORDS, rng.randint(2, 4))
        if rng.random() < 0.3:
            words.insert(0, category)
        live = rng.random() < 0.05
        viewers = int(2000 / rng.paretovariate(1.2)) if live else 0
        cat.streams.append({
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "user_id": rng.choice(cat.users)["id"],
            "title": " ".join(words).capitalize() + (f" day {rng.randint(1, 400)}"
                                                      if rng.random() < 0.2 else ""),
            "category": category,
            "tags": json.dumps(rng.sample(TAGS, rng.randint(0, 3))),
            "quality": "source", "status": "live" if live else "ended",
            "key_hash": uuid.UUID(int=rng.getrandbits(128)).hex * 2,
            "key_rotated_at": T0, "created_at": T0 + timedelta(seconds=i),
            "started_at": T0 if live else None, "ended_at": None if live else T0,
            "viewer_count": viewers, "peak_viewers": viewers, "unique_viewers": viewers,
            "viewers_by_rendition": "{}",
        })
    return cat


def expected_page(cat: Catalogue, query: Query, *, substring: bool) -> list[str]:
    """The first page (most viewers first) by the search's rule (each word begins a word
    of a field) or, with `substring`, by the peer's (each word inside some field)."""
    words = query_words(query.q)
    hits = []
    for s in cat.streams:
        if query.live and s["status"] != "live":
            continue
        if query.category is not None and s["category"] != query.category:
            continue
        fields = [s["title"], s["tags"], s["category"], cat.names[s["user_id"]]]
        if substring:
            lowered = [f.lower() for f in fields]
            ok = all(any(w in f for f in lowered) for w in words)
        else:
            indexed = set(query_words(" ".join(fields)))
            ok = all(any(t.startswith(w) if len(w) >= 2 else t == w for t in indexed)
                     for w in words)
        if ok:
            hits.append(s)
    hits.sort(key=lambda s: (s["viewer_count"], s["id"]), reverse=True)
    return [s["id"] for s in hits[:PAGE]]


def peer_sql(words: Sequence[str], query: Query) -> tuple[str, dict[str, Any]]:
    """The plain way: lower(field) LIKE '%word%' on every field, every word, same page."""
    params: dict[str, Any] = {"limit": PAGE + 1}
    where = []
    for i, word in enumerate(words):
        params[f"w{i}"] = f"%{word}%"
        where.append("(" + " OR ".join(
            f"lower({col}) LIKE :w{i}" for col in
            ("s.title", "s.tags", "s.category", "u.username", "u.display_name")) + ")")
    if query.live:
        where.append("s.status = 'live'")
    if query.category is not None:
        where.append("s.category = :category")
        params["category"] = query.category
    columns = ", ".join(f"s.{c.name}" for c in streams_table.c)
    sql = (f"SELECT {columns} FROM streams AS s JOIN users AS u ON u.id = s.user_id "
           f"WHERE {' AND '.join(where)} ORDER BY s.viewer_count DESC, s.id DESC "
           "LIMIT :limit")
    return sql, params


def pick_streamer(cat: Catalogue) -> str:
    """A streamer's name prefix that the peer's substring rule reads the same way."""
    for user in cat.users[7:]:
        query = Query(name="", q=user["username"][:6])
        found = expected_page(cat, query, substring=False)
        if found and found == expected_page(cat, query, substring=True):
            return query.q
    return cat.users[7]["username"][:6]


async def load(store: SqlStore, cat: Catalogue) -> float:
    started = time.perf_counter()

    def work() -> None:
        with store.engine.begin() as conn:
            conn.execute(users_table.insert(), cat.users)
            for i in range(0, len(cat.streams), 5000):
                conn.execute(streams_table.insert(), cat.streams[i:i + 5000])
            conn.execute(text("ANALYZE"))  # fresh statistics, as a live database has

    await trio.to_thread.run_sync(work)
    return time.perf_counter() - started


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def bench_backend(name: str, url: str, cat: Catalogue, repeat: int) -> None:
    async with await open_store(url, threads=4) as store:
        load_s = await load(store, cat)
        print(f"\n{name}: {len(cat.streams):,} streams, {len(cat.users):,} streamers loaded "
              f"and indexed in {load_s:.1f} s")
        print(f"  {'query':<34} {'matches':>7} {'search p50/p95 ms':>18} "
              f"{'LIKE p50/p95 ms':>16} {'p95 ratio':>10}")
        streamer = pick_streamer(cat)
        for query in QUERIES:
            query = Query(name=query.name, q=query.q.replace("{streamer}", streamer),
                          live=query.live, category=query.category)
            await one_query(store, cat, query, repeat)
        await others(store, repeat)


async def one_query(store: SqlStore, cat: Catalogue, query: Query, repeat: int) -> None:
    expected = expected_page(cat, query, substring=False)
    peer_expected = expected_page(cat, query, substring=True)
    sql, params = peer_sql(query_words(query.q), query)
    stmt = text(sql).columns(*streams_table.c)

    async def search() -> tuple[list[str], bool]:
        page = await store.search_streams(query=query.q, live_only=query.live,
                                          category=query.category, sort="viewers",
                                          limit=PAGE)
        return [s.id for s in page.items], page.fuzzy

    async def peer() -> list[str]:
        rows = await store._read(lambda conn: conn.execute(stmt, params).all())
        found: list[Stream] = [_rows.to_stream(r) for r in rows[:PAGE]]
        return [s.id for s in found]

    got, fuzzy = await search()
    peer_got = await peer()
    search_ms: list[float] = []
    peer_ms: list[float] = []
    for _ in range(repeat):  # interleaved: both see the same machine
        t = time.perf_counter()
        await search()
        search_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        await peer()
        peer_ms.append((time.perf_counter() - t) * 1000)
    label = f"{query.name} {query.q!r}" + (" live" if query.live else "") + (
        f" in {query.category}" if query.category else "")
    timing = (f"{pct(search_ms, 0.5):7.1f} /{pct(search_ms, 0.95):7.1f}  "
              f"{pct(peer_ms, 0.5):7.1f} /{pct(peer_ms, 0.95):7.1f}")
    if fuzzy:
        verdict = (f"no ratio: typo, search answered {len(got)} by nearest words; "
                   f"LIKE found {len(peer_got)}")
    elif got != expected:
        verdict = "search page differs from expected: no ratio"
    elif peer_got != expected or peer_expected != expected:
        verdict = "LIKE finds other streams (substring, not word prefix): no ratio"
    else:
        verdict = f"{pct(peer_ms, 0.95) / pct(search_ms, 0.95):9.1f}x"
    print(f"  {label[:34]:<34} {len(expected):>7} {timing}  {verdict}")


async def others(store: SqlStore, repeat: int) -> None:
    for name, call in [
        ("live now (first page)", lambda: store.search_streams(live_only=True, sort="viewers",
                                                               limit=PAGE)),
        ("categories", lambda: store.list_live_categories(limit=50)),
        ("relevance 'minecraft'", lambda: store.search_streams(query="minecraft", limit=PAGE)),
        ("recency 'ranked'", lambda: store.search_streams(query="ranked", sort="recency",
                                                          limit=PAGE)),
    ]:
        samples = []
        for _ in range(repeat):
            t = time.perf_counter()
            await call()  # type: ignore[no-untyped-call]
            samples.append((time.perf_counter() - t) * 1000)
        print(f"  {name:<34} {'':>7} {pct(samples, 0.5):7.1f} /{pct(samples, 0.95):7.1f}"
              f"  (no peer)")


def pg_schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_search_{uuid.uuid4().hex[:8]}"
    return schema, f"{base}?options=-csearch_path%3D{schema}"


def pg_admin(base: str, sql: str) -> None:
    import psycopg

    dsn = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    cat = make_catalogue(args.streams)
    print(f"search bench: {args.streams:,} streams, page {PAGE}, {args.repeat} runs per "
          "query, sorted by viewers (the peer has no relevance); machine possibly shared")
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            await bench_backend("SQLite (FTS5)", f"sqlite:///{Path(tmp) / 'search.db'}",
                                cat, args.repeat)
    if "postgres" in backends:
        schema, url = pg_schema_url(args.pg)
        pg_admin(args.pg, f"CREATE SCHEMA {schema}")
        try:
            await bench_backend("PostgreSQL (tsvector, GIN)", url, cat, args.repeat)
        finally:
            pg_admin(args.pg, f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    sys.exit(trio.run(main))
