"""The two error families of the RTMP layer, in the h11 style."""

from __future__ import annotations


class RTMPProtocolError(Exception):
    """The peer broke the protocol; the connection cannot continue and should be closed.

    The only exception `ServerConnection.receive_data`/`next_event` raise, so a server can
    catch exactly this, log it and drop one publisher without disturbing the others.
    """


class RTMPUsageError(RuntimeError):
    """Our own side called the API out of order (a bug in the caller, not the peer)."""
