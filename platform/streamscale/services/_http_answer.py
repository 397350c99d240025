"""What the lean listener answers with: heads encoded once, prebuilt answers, and the
request a handler sees (with `deliver`, for writing one answer to many parked requests).
Re-exported by `lean_http`, where the listener lives."""

from __future__ import annotations

import http
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lean_http import HTTPServer

__all__ = ["CORS", "TEXT", "Head", "Headers", "Ready", "Reply", "Request", "text_reply"]

Headers = list[tuple[bytes, bytes]]
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}


_COALESCE_BYTES = 64 * 1024  # below this, head and body go out in one send


class Head:
    """A status line and fixed headers, encoded once; Content-Length is added per reply."""

    __slots__ = ("block", "status")

    def __init__(self, status: int, headers: Headers) -> None:
        self.status = status
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        for name, value in headers:
            if not name.isascii() or b"\r" in name + value or b"\n" in name + value:
                raise ValueError(f"bad header {name!r}: {value!r}")
            lines.append(b"%s: %s\r\n" % (name, value))
        self.block = b"".join(lines)


class Ready:
    """A whole answer encoded once (status line, headers, Content-Length, body): what a
    cache keeps, so a hit is written with no formatting at all."""

    __slots__ = ("body", "head", "head_close", "status", "whole")

    def __init__(self, head: Head, body: bytes) -> None:
        if head.status == 204:
            raise ValueError("a 204 answer has no body to prebuild")
        self.status = head.status
        length = b"content-length: %d\r\n" % len(body)
        self.head = head.block + length + b"\r\n"
        self.head_close = head.block + length + b"connection: close\r\n\r\n"
        self.body = body
        # small answers go out in one send (a second copy of the body: counted by callers)
        self.whole = self.head + body if len(body) < _COALESCE_BYTES else b""

    @property
    def nbytes(self) -> int:
        """Memory held (for cache budgets)."""
        return len(self.head) + len(self.head_close) + len(self.body) + len(self.whole)


Reply = tuple[Head, bytes] | Ready


class _Delivered:
    """A reply `Request.deliver` already wrote (all but `unsent`)."""

    __slots__ = ("unsent",)

    def __init__(self, unsent: bytes | memoryview) -> None:
        self.unsent = unsent


class Request:
    """What a handler sees of one request: no copies, headers as h11 parsed them."""

    __slots__ = ("_fd", "_server", "_wants_close", "close_after", "headers", "method", "peer",
                 "target", "unsent")

    def __init__(
        self, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], peer: str,
        *, fd: int = -1, server: HTTPServer | None = None, wants_close: bool = False,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers  # lower-cased names, raw values
        self.peer = peer  # the client's address (IP only), "" if unknown
        self._fd = fd
        self._server = server
        self._wants_close = wants_close
        self.unsent: bytes | memoryview | None = None  # set by deliver(): what is left
        self.close_after = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def deliver(self, reply: Reply) -> bool:
        """Write a small prebuilt answer to this request's socket now, from another task,
        if the socket takes it without waiting; the connection task then finishes any
        part left and uses this answer, whatever its handler returns.

        For fan-out: the task that got an answer many requests wait for writes it to all of
        them in one pass, rather than each waiter's task being woken to write its own (a
        trio wake-up and send per waiter cost ~60 us here: 5,000 waiters, 300 ms). Only
        while the handler is running (the connection task is parked in it)."""
        server = self._server
        if (server is None or self.unsent is not None or not isinstance(reply, Ready)
                or not reply.whole or self._fd < 0):
            return False
        close = self._wants_close or server.closing or server.refusing
        if self.method == b"HEAD":
            data = reply.head_close if close else reply.head
        else:
            data = reply.head_close + reply.body if close else reply.whole
        try:
            written = os.write(self._fd, data)
        except OSError:  # full (BlockingIOError) or broken: the connection task sends
            return False
        self.unsent = memoryview(data)[written:] if written < len(data) else b""
        self.close_after = close
        return True


CORS = (b"access-control-allow-origin", b"*")
TEXT: Headers = [(b"content-type", b"text/plain; charset=utf-8"),
                 (b"cache-control", b"no-store"), CORS]
_text_heads: dict[int, Head] = {}


def text_reply(status: int | Head, message: str) -> Reply:
    """A short text/plain answer; an int status gets the no-store text head."""
    if isinstance(status, int):
        head = _text_heads.get(status)
        if head is None:
            head = _text_heads[status] = Head(status, TEXT)
        status = head
    return status, message.encode() + b"\n"
