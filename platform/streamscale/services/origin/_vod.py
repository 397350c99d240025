"""Recorded files read off the event loop, with a small byte-bounded cache.

Recordings are written once (temp file + rename) and only ever deleted by retention, so
a cached copy is right until it is evicted; a short TTL bounds how long a deleted
recording can still be served.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import trio

_MAX_FILE_BYTES = 8 * 1024 * 1024


def _read(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            return None
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None


class VodFiles:
    def __init__(
        self,
        root: Path,
        *,
        cache_bytes: int = 64 * 1024 * 1024,
        ttl_s: float = 60.0,
        threads: int = 4,
    ) -> None:
        self.root = root
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._cached_bytes = 0
        self._cache_bytes = cache_bytes
        self._ttl_s = ttl_s
        self._limiter = trio.CapacityLimiter(threads)

    async def read(self, relative: str) -> bytes | None:
        """The file at `relative` (already validated: no '..', no absolute path)."""
        now = time.monotonic()
        hit = self._cache.get(relative)
        if hit is not None and now - hit[0] < self._ttl_s:
            self._cache.move_to_end(relative)
            return hit[1]
        data = await trio.to_thread.run_sync(_read, self.root / relative, limiter=self._limiter)
        self._forget(relative)
        if data is not None and len(data) <= self._cache_bytes // 8:
            self._cache[relative] = (now, data)
            self._cached_bytes += len(data)
            while self._cached_bytes > self._cache_bytes:
                _, (_, old) = self._cache.popitem(last=False)
                self._cached_bytes -= len(old)
        return data

    def _forget(self, relative: str) -> None:
        old = self._cache.pop(relative, None)
        if old is not None:
            self._cached_bytes -= len(old[1])
