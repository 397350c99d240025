"""The edge's object store: prebuilt answers kept while the upstream's Cache-Control says
they are fresh, in a byte budget with least-recently-used eviction.

What is stored (a shared cache's reading of RFC 9111, kept to what the origin sends):
200/203/300/301/404/410 answers with a positive `s-maxage` or `max-age`, or `immutable`
(fresh until evicted). Never stored: `no-store`, `private`, `no-cache` (we do not
revalidate), no freshness at all, any other status (5xx and 503 included). An object
bigger than a quarter of the budget is served but not stored, so one huge object cannot
flush the working set.

No `Age` header is added on hits: live playlists live one second (an integer Age is then
always 0) and media is immutable, so the figure would never tell a player anything.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from ...lean_http import CORS, Head, Ready

__all__ = ["Cache", "EdgeStats", "Entry", "HeadCache", "freshness_s"]

_STORABLE = frozenset({200, 203, 300, 301, 404, 410})
_ENTRY_OVERHEAD_BYTES = 200  # the entry, its key and dict slot, roughly


@dataclass(slots=True)
class EdgeStats:
    """Counters for tests, drills and benches (plain ints, bumped on the hot path)."""

    hits: int = 0  # answered from the cache
    misses: int = 0  # answered from an upstream fetch (started or joined)
    upstream_requests: int = 0  # fetches sent upstream
    coalesced: int = 0  # misses that joined a fetch already in flight
    upstream_errors: int = 0  # fetches that failed (502/504 made here) or answered 5xx
    evictions: int = 0  # entries pushed out by the byte budget
    cached_bytes: int = 0  # memory the cache holds now (bodies, prebuilt heads, keys)


def freshness_s(status: int, cache_control: bytes) -> float | None:
    """How long an answer may be served from cache, or None if it must not be stored."""
    if status not in _STORABLE:
        return None
    max_age: float | None = None
    shared_max_age: float | None = None
    immutable = False
    for item in cache_control.lower().split(b","):
        name, _, value = item.strip().partition(b"=")
        if name in (b"no-store", b"private", b"no-cache"):
            return None
        if name == b"immutable":
            immutable = True
        elif name in (b"max-age", b"s-maxage"):
            try:
                seconds = float(int(value.strip().strip(b'"')))
            except ValueError:
                return None  # a malformed max-age is treated as stale (RFC 9111 4.2.1)
            if name == b"max-age":
                max_age = seconds
            else:
                shared_max_age = seconds
    age = shared_max_age if shared_max_age is not None else max_age
    if immutable and age is None:
        return math.inf
    if age is None or age <= 0:
        return None
    return age


class HeadCache:
    """Response heads built once per (status, content type, cache control, x-cache)."""

    _MAX = 256  # distinct combinations kept; past that (a strange upstream) built per use

    def __init__(self) -> None:
        self._heads: dict[tuple[int, bytes, bytes, bytes], Head] = {}

    def get(self, status: int, content_type: bytes, cache_control: bytes, x_cache: bytes
            ) -> Head:
        key = (status, content_type, cache_control, x_cache)
        head = self._heads.get(key)
        if head is None:
            headers = [(b"content-type", content_type)] if content_type else []
            if cache_control:
                headers.append((b"cache-control", cache_control))
            headers += [CORS, (b"x-cache", x_cache)]
            head = Head(status, headers)
            if len(self._heads) < self._MAX:
                self._heads[key] = head
        return head


class Entry:
    __slots__ = ("expires_s", "nbytes", "rendition", "reply", "stream_id")

    def __init__(
        self, reply: Ready, expires_s: float, stream_id: str, rendition: str, key: bytes
    ) -> None:
        self.reply = reply  # the HIT answer
        self.expires_s = expires_s
        self.stream_id = stream_id  # for access records ("" outside /live/)
        self.rendition = rendition
        self.nbytes = reply.nbytes + len(key) + _ENTRY_OVERHEAD_BYTES


class Cache:
    """Key (request target without CMCD) -> Entry, LRU-ordered, within `budget_bytes`."""

    def __init__(self, budget_bytes: int, stats: EdgeStats) -> None:
        if budget_bytes <= 0:
            raise ValueError("cache budget must be positive")
        self.budget_bytes = budget_bytes
        self.max_object_bytes = budget_bytes // 4
        self._stats = stats
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: bytes, now_s: float) -> Entry | None:
        """The fresh entry for `key` (now the most recently used), else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_s <= now_s:
            del self._entries[key]
            self._stats.cached_bytes -= entry.nbytes
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: Entry) -> bool:
        """Store `entry` (replacing any older one), evicting the least recently used until
        the budget holds; False if it is too big to store."""
        if entry.nbytes > self.max_object_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self._stats.cached_bytes -= old.nbytes
        self._entries[key] = entry
        stats = self._stats
        stats.cached_bytes += entry.nbytes
        while stats.cached_bytes > self.budget_bytes:
            _, evicted = self._entries.popitem(last=False)
            stats.cached_bytes -= evicted.nbytes
            stats.evictions += 1
        return True
