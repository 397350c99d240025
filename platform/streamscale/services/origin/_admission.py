"""The origin behind CDNs: edge fetches pass, direct viewers are admitted up to a limit.

When every CDN is down, players fall back to the origin (the `origin` steering pathway,
or the gateway's playback URL). The origin must not be trampled by all of them: it serves
at most `cdn.origin_viewer_limit` direct viewer sessions at once. A session (see
`cdn.sessions.session_id`: the player's CMCD sid, else address + user agent) holds its
slot while it keeps fetching and frees it after `origin_session_idle_s` without a
request. A request past the limit gets 503 with Retry-After and a text that says why, at
once. Requests carrying `x-streamscale-edge` are edge fetches: never limited (one edge
fetch serves any number of viewers).

O(1) per request: sessions sit in an OrderedDict from least to most recently seen; a
request moves its session to the end, and idle sessions are dropped from the front.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import trio

from ..lean_http import CORS, Head, Reply

EDGE_HEADER = b"x-streamscale-edge"


class Admission:
    """Direct viewer sessions admitted by the origin (one task: the event loop's)."""

    def __init__(
        self,
        limit: int,
        idle_s: float,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.limit = limit
        self.idle_s = idle_s
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # session -> last request time
        self.refused = 0  # requests answered 503
        retry_after = str(max(1, math.ceil(idle_s))).encode()
        self._full_head = Head(503, [
            (b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"),
            (b"retry-after", retry_after), CORS,
            (b"access-control-expose-headers", b"retry-after"),
        ])
        self._full_body = (
            f"origin at capacity: {limit} direct viewers; the CDNs are down or you bypassed "
            "them; retry later\n").encode()

    @property
    def active(self) -> int:
        """Sessions holding a slot now."""
        self._expire(self._clock())
        return len(self._seen)

    def admit(self, session: str) -> bool:
        """Count a request of `session`; False if it may not be served (origin full)."""
        now = self._clock()
        seen = self._seen
        if session in seen:
            seen[session] = now
            seen.move_to_end(session)
            return True
        self._expire(now)
        if len(seen) >= self.limit:
            self.refused += 1
            return False
        seen[session] = now
        return True

    def _expire(self, now: float) -> None:
        seen, horizon = self._seen, now - self.idle_s
        while seen:
            oldest, last = next(iter(seen.items()))
            if last > horizon:
                return
            del seen[oldest]

    def full(self) -> Reply:
        """The answer past the limit."""
        return self._full_head, self._full_body
