"""Rate limits on the API, via the `limits` library (moving window, in memory).

Buckets: "login" and "register" per client IP, "write" per authenticated user. In one
process the memory storage is exact; with several gateways the limits library's Redis
storage gives the same windows across processes (cluster mode, roadmap item 9).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from ...config import GatewayConfig
from ..errors import RateLimited


class RateLimits:
    def __init__(self, config: GatewayConfig, storage: Storage | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self._items = {
            "login": RateLimitItemPerMinute(config.login_rate_per_minute),
            "register": RateLimitItemPerMinute(config.login_rate_per_minute),
            "write": RateLimitItemPerMinute(config.write_rate_per_minute),
        }

    def hit(self, bucket: str, key: str) -> None:
        """Count one request; raise RateLimited (429 + Retry-After) past the limit."""
        item = self._items[bucket]
        if self._limiter.hit(item, bucket, key):
            return
        stats = self._limiter.get_window_stats(item, bucket, key)
        retry_after_s = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"too many {bucket} requests: at most {item.amount} per minute; "
            f"retry in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
