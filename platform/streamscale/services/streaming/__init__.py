"""The streaming service: stream lifecycle and stream keys."""

from ._api import bp
from ._service import StreamService, key_hash

__all__ = ["StreamService", "bp", "key_hash"]
