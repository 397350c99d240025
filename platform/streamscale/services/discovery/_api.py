"""HTTP routes of discovery: GET /api/streams/search, /api/streams/live, /api/categories.

Reads only, open to anyone (no token). Query strings are checked before any database
work: the one error shape for bad input (400 validation_error, invalid_cursor,
invalid_unicode), never a 5xx.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from quart import Blueprint, request
from quart_schema import tag, validate_querystring, validate_response

from ...backends.storage import SearchPage
from ..api import deps, errors
from ..errors import ApiError
from ..streaming._api import _out
from ._schemas import (
    CategoriesOut,
    CategoriesQuery,
    CategoryOut,
    LiveQuery,
    SearchPageOut,
    SearchQuery,
)

bp = Blueprint("discovery", __name__, url_prefix="/api")


def _check_query_string() -> None:
    """A percent-escape that is not UTF-8 (e.g. a lone surrogate, %ED%A0%80) would reach
    the routes as U+FFFD and match nothing silently: refuse it instead."""
    for part in request.query_string.split(b"&"):
        try:
            unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError("the query string is not UTF-8 (a lone surrogate?)",
                           code="invalid_unicode") from None


def _page(page: SearchPage) -> SearchPageOut:
    return SearchPageOut(items=[_out(s) for s in page.items], next_cursor=page.next_cursor,
                         fuzzy=page.fuzzy)


@bp.get("/streams/search")
@tag(["discovery"])
@validate_querystring(SearchQuery)
@validate_response(SearchPageOut)
@errors(400)
async def search(query_args: SearchQuery) -> SearchPageOut:
    """Find streams by words (prefixes, with typo tolerance), category, tags, live or not;
    sorted by relevance, current viewers or recency. Pass next_cursor back with the same
    query for the next page."""
    _check_query_string()
    a = query_args
    return _page(await deps().store.search_streams(
        query=a.q, category=a.category, tags=a.tags, live_only=a.live, sort=a.sort,
        cursor=a.cursor, limit=a.limit))


@bp.get("/streams/live")
@tag(["discovery"])
@validate_querystring(LiveQuery)
@validate_response(SearchPageOut)
@errors(400)
async def live_now(query_args: LiveQuery) -> SearchPageOut:
    """Live now: live streams, most current viewers first (the edges' latest counts)."""
    _check_query_string()
    a = query_args
    return _page(await deps().store.search_streams(
        category=a.category, live_only=True, sort="viewers", cursor=a.cursor, limit=a.limit))


@bp.get("/categories")
@tag(["discovery"])
@validate_querystring(CategoriesQuery)
@validate_response(CategoriesOut)
@errors(400)
async def categories(query_args: CategoriesQuery) -> CategoriesOut:
    """Categories with live streams: how many, and their viewers, most viewers first."""
    _check_query_string()
    found = await deps().store.list_live_categories(limit=query_args.limit)
    return CategoriesOut(items=[CategoryOut(category=c.category, live_streams=c.live_streams,
                                            viewers=c.viewers) for c in found])
