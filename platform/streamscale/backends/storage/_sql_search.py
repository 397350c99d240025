"""Discovery on SQL: stream search over the index of migration 0005, live categories.

The index is kept by triggers (see the migration); this module only reads it. A query's
words reach the database as quoted terms built here from letters and digits alone
(`query_words`), bound as one parameter: FTS5 and tsquery syntax in what a user types is
never syntax. Pages are keyset pages on (sort key, id) with an opaque cursor, as in
`_cursor`, so a page costs the same at any depth.

Typo tolerance is the same on both backends (so one contract suite holds): candidates
are indexed words with the same first letter and a length within the allowed distance
(SQLite: the fts5vocab table; PostgreSQL: `stream_search_terms`, a "C"-collated btree),
kept when within 1 edit (2 from 8 letters, transpositions count as one).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Float, Integer, bindparam, column, text
from sqlalchemy.types import TypeEngine

from . import _rows
from ._interface_search import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_SEARCH_LIMIT,
    CategoryStats,
    SearchPage,
    SearchSort,
    query_words,
)
from ._records import InvalidCursor
from ._runner import SqlRunner
from ._tables import UTCDateTime, streams

log = logging.getLogger(__name__)

_SORTS = ("relevance", "viewers", "recency")
_COLUMNS = ", ".join(f"s.{c.name}" for c in streams.c)
_PAGE_COLUMNS = ", ".join(f"p.{c.name}" for c in streams.c)
_FUZZY_MIN_LETTERS = 4  # shorter words have too many neighbours to guess from
_FUZZY_PER_WORD = 4
_BROAD_MATCHES = 2000  # more matches than this: walk the sort order (see `_page`)
# title, tags, category, streamer (stream_id is unindexed): a title hit counts most
_SQLITE_RANK = "-bm25(stream_search, 0.0, 10.0, 4.0, 2.0, 6.0)"


def is_search_index(name: str) -> bool:
    """Tables of the search index (migration 0005): derived, dialect-specific, and so left
    out of `_tables.metadata` and of schema comparisons."""
    return name == "stream_search" or name.startswith("stream_search_")


@dataclass(frozen=True, kw_only=True)
class _After:
    """Where a page starts: after the row with this sort key and id."""

    sort: str
    fuzzy: bool
    key: int | float | datetime
    row_id: str


def _encode(after: _After) -> str:
    if isinstance(after.key, datetime):
        key = after.key.astimezone(UTC).isoformat()
    elif isinstance(after.key, float):
        key = after.key.hex()  # exact: the next page compares the score for equality
    else:
        key = str(after.key)
    raw = f"s1|{after.sort}|{'f' if after.fuzzy else 'e'}|{key}|{after.row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")


def _decode(cursor: str, sort: str) -> _After:
    try:
        if not cursor or len(cursor) > 400:
            raise ValueError("bad length")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        version, kind, mode, key_text, row_id = raw.split("|", 4)
        if version != "s1" or kind != sort or mode not in ("e", "f") or not row_id:
            raise ValueError("not this search's cursor")
        if "\x00" in row_id or len(row_id) > 64:
            raise ValueError("bad id")
        key: int | float | datetime
        if sort == "viewers":
            if not key_text.isascii() or not key_text.isdigit() or len(key_text) > 18:
                raise ValueError("bad count")
            key = int(key_text)
        elif sort == "recency":
            key = datetime.fromisoformat(key_text)
            if key.utcoffset() is None:
                raise ValueError("naive time")
            key = key.astimezone(UTC)
        else:
            key = float.fromhex(key_text)
            if key != key or key in (float("inf"), float("-inf")):
                raise ValueError("not a score")
    except (ValueError, binascii.Error, UnicodeError, OverflowError):
        raise InvalidCursor() from None
    return _After(sort=sort, fuzzy=mode == "f", key=key, row_id=row_id)


def _within(word: str, term: str, limit: int) -> int | None:
    """Optimal string alignment distance of word and term if at most `limit`, else None."""
    if abs(len(word) - len(term)) > limit:
        return None
    prev2: list[int] = []
    prev = list(range(len(term) + 1))
    for i in range(1, len(word) + 1):
        row = [i] + [0] * len(term)
        for j in range(1, len(term) + 1):
            cost = 0 if word[i - 1] == term[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if (i > 1 and j > 1 and word[i - 1] == term[j - 2]
                    and word[i - 2] == term[j - 1]):
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return None
        prev2, prev = prev, row
    return prev[-1] if prev[-1] <= limit else None


def _allowed_edits(word: str) -> int:
    if len(word) < _FUZZY_MIN_LETTERS:
        return 0
    return 1 if len(word) < 8 else 2


class SearchMixin(SqlRunner):
    async def search_streams(
        self,
        *,
        query: str = "",
        category: str | None = None,
        tags: Sequence[str] = (),
        live_only: bool = False,
        sort: SearchSort = "relevance",
        cursor: str | None = None,
        limit: int = 50,
    ) -> SearchPage:
        if len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"query over {MAX_QUERY_CHARS} characters")
        words = query_words(query)
        if len(words) > MAX_QUERY_WORDS:
            raise ValueError(f"query over {MAX_QUERY_WORDS} words")
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_SEARCH_LIMIT}")
        if sort not in _SORTS:
            raise ValueError(f"unknown sort {sort!r}")
        if not words and sort == "relevance":
            sort = "viewers"  # nothing to be relevant to
        after = None if cursor is None else _decode(cursor, sort)
        filters = _Filters(category=category, tags=tuple(tags), live_only=live_only)

        def work(conn: Connection) -> SearchPage:
            fuzzy = after is not None and after.fuzzy
            groups: list[list[str]] = [[w] for w in words]
            if fuzzy:
                groups = self._widen(conn, words)
            rows = self._page(conn, groups, filters, sort, after, limit)
            if not rows and words and after is None:
                widened = self._widen(conn, words)
                if widened != groups:
                    fuzzy = True
                    rows = self._page(conn, widened, filters, sort, None, limit)
            items = [_rows.to_stream(row) for row in rows[:limit]]
            next_cursor = None
            if len(rows) > limit:
                last, last_row = items[-1], rows[limit - 1]
                key: int | float | datetime = (
                    last.viewer_count if sort == "viewers"
                    else last.created_at if sort == "recency" else float(last_row.score))
                next_cursor = _encode(_After(sort=sort, fuzzy=fuzzy, key=key, row_id=last.id))
            return SearchPage(items=items, next_cursor=next_cursor, fuzzy=fuzzy and bool(items))

        try:
            return await self._read(work)
        except _StaleRowids:
            log.warning("search index rowids out of step with streams (a VACUUM?): "
                        "rebuilding the index")
            await self._write(_rebuild_sqlite_index)
            return await self._read(work)

    async def list_live_categories(self, *, limit: int = 50) -> list[CategoryStats]:
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_SEARCH_LIMIT}")
        stmt = text(
            "SELECT category, count(*) AS live_streams, "
            "coalesce(sum(viewer_count), 0) AS viewers FROM streams WHERE status = 'live' "
            "GROUP BY category ORDER BY viewers DESC, live_streams DESC, category LIMIT :limit"
        ).bindparams(limit=limit)
        rows = await self._read(lambda conn: conn.execute(stmt).all())
        return [CategoryStats(category=r.category, live_streams=int(r.live_streams),
                              viewers=int(r.viewers)) for r in rows]

    # the SQL ----------------------------------------------------------------------------
    def _matches_upto(self, conn: Connection, match: str) -> list[str] | None:
        """The matching stream ids (PostgreSQL; SQLite: an empty list, its count being all
        that is needed), or None past _BROAD_MATCHES: one pass over the index either way."""
        params = {"match": match, "cap": _BROAD_MATCHES + 1}
        if self._sqlite:
            found = conn.execute(text(
                "SELECT count(*) FROM (SELECT 1 FROM stream_search "
                "WHERE stream_search MATCH :match LIMIT :cap) AS hits"), params).scalar_one()
            return None if int(found) > _BROAD_MATCHES else []
        ids = list(conn.execute(text(
            "SELECT stream_id FROM stream_search "
            "WHERE document @@ to_tsquery('simple', :match) LIMIT :cap"), params).scalars())
        return None if len(ids) > _BROAD_MATCHES else ids

    def _widen(self, conn: Connection, words: list[str]) -> list[list[str]]:
        """Each word with the indexed words near it (itself first)."""
        table = "stream_search_vocab" if self._sqlite else "stream_search_terms"
        lookup = text(
            f"SELECT term FROM {table} WHERE term >= :low AND term < :high "
            "AND length(term) BETWEEN :shortest AND :longest"
        )
        groups = []
        for word in words:
            edits = _allowed_edits(word)
            group = [word]
            if edits:
                terms = conn.execute(lookup, {
                    "low": word[0], "high": chr(ord(word[0]) + 1),
                    "shortest": len(word) - edits, "longest": len(word) + edits,
                }).scalars()
                near = sorted((d, t) for t in terms
                              if t != word and (d := _within(word, t, edits)) is not None)
                group += [t for _, t in near[:_FUZZY_PER_WORD]]
            groups.append(group)
        return groups

    def _page(
        self,
        conn: Connection,
        groups: list[list[str]],
        filters: _Filters,
        sort: str,
        after: _After | None,
        limit: int,
    ) -> list[Any]:
        params: dict[str, Any] = {"limit": limit + 1}
        where: list[str] = []
        ranked = sort == "relevance"  # scores cost: only when they order the page
        score, entry, prefix = "0.0", "NULL", ""
        if groups:
            params["match"] = (_fts5_match if self._sqlite else _tsquery)(groups)
        # A broad match (thousands of streams) is cheapest by walking the sort's index and
        # keeping the streams in the match set, which stops after a page; a narrow one by
        # joining its few matches and sorting them.
        narrow_ids = None if not groups or ranked else self._matches_upto(conn, params["match"])
        broad = bool(groups) and not ranked and narrow_ids is None
        if groups and self._sqlite and broad:
            order_index = ("ix_streams_viewer_count_id" if sort == "viewers"
                           else "ix_streams_created_at_id")
            source = f"streams AS s INDEXED BY {order_index}"
            where.append("s.rowid IN (SELECT rowid FROM stream_search "
                         "WHERE stream_search MATCH :match)")
            entry = "s.rowid"
        elif groups and self._sqlite:
            # Joined on rowid (the stream row's): reading each entry's own stream_id
            # costs 5x more for a broad word; the page's rows check it (`_StaleRowids`).
            source = (f"(SELECT rowid AS r{f', {_SQLITE_RANK} AS score' if ranked else ''} "
                      "FROM stream_search WHERE stream_search MATCH :match) AS m "
                      "JOIN streams AS s ON s.rowid = m.r")
            entry = "m.r"
        elif groups and broad:
            source = "streams AS s"
            where.append("s.id IN (SELECT stream_id FROM stream_search "
                         "WHERE document @@ to_tsquery('simple', :match))")
        elif groups and narrow_ids is not None:
            source = "streams AS s"  # the ids came from the index a moment ago
            where.append("s.id = ANY(:ids)")
            params["ids"] = narrow_ids
            del params["match"]
        elif groups:
            rank = ", ts_rank(document, q)::float8 AS score" if ranked else ""
            matches = (f"SELECT stream_id{rank} FROM stream_search, "
                       "to_tsquery('simple', :match) AS q WHERE document @@ q")
            if ranked and filters.unfiltered:
                # Nothing but the words: the page is the index's best, so rank there and
                # join a page of streams, not every match (5x less at 12,000 matches).
                after_clause = ("" if after is None else
                                " WHERE score <= :after_key AND (score < :after_key "
                                "OR stream_id < :after_id)")
                matches = (f"SELECT stream_id, score FROM ({matches}) AS ranked{after_clause}"
                           " ORDER BY score DESC, stream_id DESC LIMIT :limit")
            prefix = f"WITH m AS MATERIALIZED ({matches}) "
            source = "m JOIN streams AS s ON s.id = m.stream_id"
        else:
            source = "streams AS s"
        if groups and ranked:
            score = "m.score"
        if filters.live_only:
            where.append("s.status = 'live'")
        if filters.category is not None:
            where.append("s.category = :category")
            params["category"] = filters.category
        for i, tag in enumerate(filters.tags):
            # tags are a JSON array of strings: match one whole element, as JSON writes it
            escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(f"s.tags LIKE :tag{i} ESCAPE '\\'")
            params[f"tag{i}"] = f'%"{escaped}"%'
        key = {"viewers": "s.viewer_count", "recency": "s.created_at", "relevance": score}[sort]
        binds = []
        if after is not None:
            # <= first: an index on the key can seek to the cursor instead of walking to it
            where.append(f"{key} <= :after_key AND ({key} < :after_key OR s.id < :after_id)")
            params["after_key"], params["after_id"] = after.key, after.row_id
            key_type: TypeEngine[Any] = (Integer() if sort == "viewers" else UTCDateTime()
                                         if sort == "recency" else Float())
            binds.append(bindparam("after_key", type_=key_type))
        outer_key = {"viewers": "p.viewer_count", "recency": "p.created_at",
                     "relevance": "p.score"}[sort]
        checked = ("(SELECT stream_id FROM stream_search WHERE rowid = p.entry)"
                   if entry != "NULL" else "p.id")
        sql = (f"{prefix}SELECT {_PAGE_COLUMNS}, p.score, {checked} AS indexed_id "
               f"FROM (SELECT {_COLUMNS}, {score} AS score, {entry} AS entry FROM {source}"
               + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {key} DESC, s.id DESC LIMIT :limit) AS p"
               f" ORDER BY {outer_key} DESC, p.id DESC")
        stmt = text(sql).bindparams(*binds).columns(*streams.c, column("score", Float()),
                                                    column("indexed_id"))
        rows = list(conn.execute(stmt, params).all())
        if any(row.indexed_id != row.id for row in rows):
            raise _StaleRowids()
        return rows


class _StaleRowids(Exception):
    """The index's rowids no longer point at the streams it indexed (SQLite's VACUUM may
    renumber a table without an INTEGER PRIMARY KEY): the index must be rebuilt."""


def _rebuild_sqlite_index(conn: Connection) -> None:
    conn.execute(text("DELETE FROM stream_search"))
    conn.execute(text(_SQLITE_FILL))


# Migration 0005's fill, run again on a rebuild (SQLite).
_SQLITE_FILL = """INSERT INTO stream_search (rowid, stream_id, title, tags, category, streamer)
    SELECT s.rowid, s.id, s.title, s.tags, s.category,
           CASE WHEN u.deleted_at IS NULL THEN u.username || ' ' || u.display_name ELSE '' END
    FROM streams AS s JOIN users AS u ON u.id = s.user_id"""


@dataclass(frozen=True, kw_only=True)
class _Filters:
    category: str | None
    tags: tuple[str, ...]
    live_only: bool

    @property
    def unfiltered(self) -> bool:
        return self.category is None and not self.tags and not self.live_only


def _fts5_match(groups: list[list[str]]) -> str:
    """Every group matches (AND); within one, the word as a prefix or a near word."""
    def term(word: str, first: bool) -> str:
        return f'"{word}"*' if first and len(word) >= 2 else f'"{word}"'

    return " AND ".join(
        "(" + " OR ".join(term(w, i == 0) for i, w in enumerate(group)) + ")"
        for group in groups)


def _tsquery(groups: list[list[str]]) -> str:
    def term(word: str, first: bool) -> str:
        return f"'{word}':*" if first and len(word) >= 2 else f"'{word}'"

    return " & ".join(
        "(" + " | ".join(term(w, i == 0) for i, w in enumerate(group)) + ")"
        for group in groups)
