"""A private Redis key prefix per test, its keys deleted afterwards (the Redis bus tests
share one server, 127.0.0.1:6379 db 0, with whatever else runs there)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_key_prefix(label: str) -> Iterator[str]:
    """Yield `test-<label>-<random>`; on resumption delete every key under it. For a
    pytest fixture: `yield from redis_key_prefix("bus")`."""
    import redis  # the dev extra; only tests that use Redis come here

    prefix = f"test-{label}-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
