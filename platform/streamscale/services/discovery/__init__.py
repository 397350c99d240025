"""Discovery: stream search, "live now" and the categories with live streams."""

from ._api import bp

__all__ = ["bp"]
