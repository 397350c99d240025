"""Wall-clock time for records and tokens (one place, so tests can see what is used)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def epoch_s() -> float:
    return time.time()


def new_id() -> str:
    """An opaque, unguessable row id (uuid4-sized, hex)."""
    return secrets.token_hex(16)
