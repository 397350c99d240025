"""The social service: went-live notifications (server-sent events over the bus),
"following, live now", watch history and explainable recommendations (issue 14)."""

from ._api import bp
from ._service import SocialService
from .events import TOPIC, WentLive, announce_live
from .feed import LiveFeed

__all__ = ["TOPIC", "LiveFeed", "SocialService", "WentLive", "announce_live", "bp"]
