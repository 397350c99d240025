"""Chat: the WebSocket gateway (fanout.py), the bus pipeline and workers (pipeline.py),
moderation (moderation/, moderation_store.py) and the HTTP routes (_api.py)."""

from .service import run

__all__ = ["run"]
