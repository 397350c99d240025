"""The Locust entry point `streamscale load` runs (`locust -f loadtest/locustfile.py`).

Run only as a subprocess: importing Locust patches the process with gevent.
"""

from __future__ import annotations

from loadtest.shapes import StreamscaleShape
from loadtest.users._common import settings
from loadtest.users.api import ApiUser
from loadtest.users.chat import ChatUser
from loadtest.users.player import HlsPlayer
from loadtest.users.streamer import StreamerUser

_s = settings()
ChatUser.fixed_count = _s.chat_users
ApiUser.fixed_count = _s.api_users
StreamerUser.fixed_count = _s.streamers

__all__ = ["ApiUser", "ChatUser", "HlsPlayer", "StreamerUser", "StreamscaleShape"]
