"""Errors hypercorn answers itself, before any request reaches the app, in the JSON shape.

h11 refuses what it cannot parse as HTTP/1.1 (a malformed request line or header: 400; a
request head over `h11_max_incomplete_size`: 431; a transfer coding it does not know: 501)
and hypercorn answers those with an empty body. hypercorn has no setting for that answer,
so its one method that writes it (`H11Protocol._send_error_response`, hypercorn 0.17-0.18)
is replaced here by one that writes `{"error": {"code", "message", "request_id"}}` and an
X-Request-Id header; likewise WSStream's answer to a malformed WebSocket handshake (400).
If a hypercorn release drops either method, it is not replaced (logged) and those answers
go back to empty bodies; tests/services/test_bad_input.py notices.
What hypercorn cannot answer in any shape is listed in the README (Rules worth knowing).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from http import HTTPStatus
from itertools import chain
from typing import Any

import h11
from hypercorn.protocol.events import Body, EndBody, Response
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import WSStream

from ..errors import error_body

log = logging.getLogger(__name__)

_CODES = {400: "bad_request", 431: "headers_too_large", 501: "not_implemented",
          505: "http_version_not_supported"}
_MESSAGES = {
    400: "malformed HTTP/1.1 request",
    431: "request line or headers too large",
    501: "unsupported transfer coding (only chunked)",
}


def error_response(
    status_code: int, message: str | None = None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the framing error `status_code`, in the one error shape."""
    rid = secrets.token_hex(8)
    try:
        phrase = HTTPStatus(status_code).phrase.lower()
    except ValueError:
        phrase = "protocol error"
    body = json.dumps(error_body(
        _CODES.get(status_code, "protocol_error"),
        message or _MESSAGES.get(status_code, phrase), rid,
    )).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
               (b"x-request-id", rid.encode())]
    return headers, body


async def _send_error_response(self: Any, status_code: int) -> None:
    headers, body = error_response(status_code)
    await self._send_h11_event(h11.Response(
        status_code=status_code,
        headers=list(chain(headers, self.config.response_headers("h11"))),
    ))
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())


async def _send_handshake_error(self: Any, status_code: int) -> None:
    """WSStream's answer to an upgrade it refuses (a bad WebSocket handshake)."""
    headers, body = error_response(status_code, "invalid WebSocket handshake")
    await self.send(Response(stream_id=self.stream_id, status_code=status_code,
                             headers=headers))
    await self.send(Body(stream_id=self.stream_id, data=body))
    await self.send(EndBody(stream_id=self.stream_id))
    await self.config.log.access(self.scope, {"status": status_code, "headers": []},
                                 time.time() - self.start_time)


def install() -> None:
    """Make hypercorn's own error answers JSON (idempotent, process-wide)."""
    for cls, replacement in [(H11Protocol, _send_error_response),
                             (WSStream, _send_handshake_error)]:
        current = getattr(cls, "_send_error_response", None)
        if current is replacement:
            continue
        if current is None:
            log.warning("hypercorn has no %s._send_error_response: its errors keep empty "
                        "bodies", cls.__name__)
            continue
        setattr(cls, "_send_error_response", replacement)  # noqa: B010
