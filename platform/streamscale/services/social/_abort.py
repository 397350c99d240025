"""Close a client's TCP connection from the application, for dropping a stalled listener.

hypercorn writes responses with the socket write shielded from cancellation, and an ASGI
application has no handle on the socket: a client that stops reading (full receive window)
would keep its connection's task parked in that write for as long as the peer stays up,
and hold up a graceful shutdown with it. Shutting the socket down (found by its address
pair among this process's descriptors) wakes that write with a broken pipe, and hypercorn
then closes the connection itself.

Linux only (/proc/self/fd); elsewhere the connection is left as it is, and only stops
being fed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any

log = logging.getLogger(__name__)

def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, (tuple, list)) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None


def abort_connection(client: Any, server: Any) -> bool:
    """Shut down this process's TCP socket from `server` to `client` (ASGI scope
    addresses); True if one was found. Blocking-free: a scan of the process's fds."""
    peer, local = _address(client), _address(server)
    if peer is None or local is None:
        return False
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for name in fds:
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with dup:
            try:
                if dup.type != socket.SOCK_STREAM or dup.family not in (socket.AF_INET,
                                                                       socket.AF_INET6):
                    continue
                mine = _address(dup.getsockname())
                if _address(dup.getpeername()) != peer or mine is None or mine[1] != local[1]:
                    continue
            except OSError:  # not connected, or a listener
                continue
            with contextlib.suppress(OSError):
                dup.shutdown(socket.SHUT_RDWR)  # acts on the connection, not just this fd
            log.info("aborted the connection of %s:%d", *peer)
            return True
    return False
