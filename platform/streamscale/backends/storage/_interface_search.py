"""Discovery: the search part of the storage interface (`Store` inherits it).

What a query matches, on both backends: each word of the query (letters and digits; case
and common Latin accents ignored) must begin a word of the stream's title, tags,
category or streamer (username or display name): "mine craft" finds "Minecraft
craftsmen". A query that matches nothing is retried once with each word of 4+
characters widened to indexed words within a small edit distance ("minecarft" finds
"minecraft"); the page says so (`fuzzy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ._records import Stream

SearchSort = Literal["relevance", "viewers", "recency"]
MAX_QUERY_CHARS = 100  # as sent
MAX_QUERY_WORDS = 8
MAX_SEARCH_LIMIT = 100


@dataclass(frozen=True, kw_only=True)
class SearchPage:
    items: list[Stream]
    next_cursor: str | None  # opaque; only valid with the same query, filters and sort
    fuzzy: bool  # nothing matched as typed: these match the nearest indexed words


@dataclass(frozen=True, kw_only=True)
class CategoryStats:
    category: str
    live_streams: int
    viewers: int  # sum of the live streams' viewer_count (the edges' latest sample)


class SearchStore(Protocol):
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
        """Streams matching `query` (all of them when it has no words) and every filter:
        `category` exactly, every one of `tags`, status live if `live_only`.

        Sorted by relevance (best first; with no words, as viewers), viewers (current
        viewer_count, most first) or recency (created_at, newest first), ties by id.
        ValueError for a query over MAX_QUERY_CHARS or MAX_QUERY_WORDS words, or a limit
        outside 1..MAX_SEARCH_LIMIT; InvalidCursor for a cursor this search did not make.
        """

    async def list_live_categories(self, *, limit: int = 50) -> list[CategoryStats]:
        """Categories with at least one live stream, most viewers first (then most live
        streams, then by name)."""


# The folding the PostgreSQL index applies (migration 0005's stream_search_fold): SQLite's
# unicode61 tokenizer folds the same letters, and more, on both sides of a match.
FOLD_FROM = ("àáâãäåāăąçćĉċčďđèéêëēĕėęěĝğġģĥħìíîïĩīĭįıĵķĺļ"
             "ľŀłñńņňòóôõöøōŏőŕŗřśŝşšţťŧùúûüũūŭůűųŵýÿŷźżž")
FOLD_TO = ("aaaaaaaaacccccddeeeeeeeeegggghhiiiiiiiiijkll"
           "lllnnnnooooooooorrrsssstttuuuuuuuuuuwyyyzzz")
_FOLD = str.maketrans(FOLD_FROM, FOLD_TO)


def query_words(query: str) -> list[str]:
    """The words of a query as the index sees them (lower case, Latin accents folded).

    Letters (L*) and decimal digits (Nd) make words; anything else separates them, as
    PostgreSQL's [:alnum:] (C.UTF-8) and SQLite's unicode61 (told that the Latin-1
    superscripts and fractions separate) do.

    Only these reach the database, each quoted as a term: FTS syntax (`"`, `*`, `NEAR(`,
    `OR`, `-`) and SQL quotes in a query are separators, never operators.
    """
    folded = "".join(ch if ch.isalpha() or ch.isdecimal() else " "
                     for ch in query.lower().translate(_FOLD))
    return folded.split()
