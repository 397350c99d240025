"""The lean listener's fast path for request heads: one regex for what players send.

h11 costs 60-95 us per request here (a fresh connection object, its state machine and
event classes); a plain GET/HEAD head read by one regex costs 2-12 us. `parse_head`
accepts only a subset of what h11 accepts (HTTP/1.1, origin-form target, CRLF lines,
well-formed fields, one Host, no body framing) and reads it the same way; anything else
goes to h11 whole, so odd or hostile input is judged exactly as before.
"""

from __future__ import annotations

import re

__all__ = ["BLANK_LINE", "parse_head"]

# A blank line ends a head (h11 also takes a bare LF); the fast path reads CRLF heads only.
BLANK_LINE = re.compile(rb"\n\r?\n")
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_VALUE = rb"[^\x00-\x08\x0a-\x1f\x7f]*"  # one class, no nesting: re scans it in C
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")\r\n")
_PLAIN_HEAD = re.compile(
    rb"(GET|HEAD) (/[\x21-\x7e]*) HTTP/1\.1\r\n((?:" + _TOKEN + rb":" + _VALUE
    + rb"\r\n)*)\r\n")
_NOT_PLAIN = (b"content-length", b"transfer-encoding")


def parse_head(
    data: bytes, end: int
) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bool] | None:
    """(method, target, headers, close) of a plain request head `data[:end]`: HTTP/1.1
    GET or HEAD of an origin-form target, well-formed fields, one Host, no body framing.
    None for anything else, which h11 then reads (and refuses as it sees fit); what this
    accepts is a subset of what h11 accepts, read the same way (names lower-cased, values
    without surrounding whitespace)."""
    match = _PLAIN_HEAD.fullmatch(data, 0, end)
    if match is None:
        return None
    headers = []
    hosts = 0
    close = False
    for name, value in _FIELD.findall(match[3]):
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"host":
            hosts += 1
        elif name in _NOT_PLAIN:
            return None
        elif name == b"connection" and b"close" in value.lower():
            close = True
        headers.append((name, value))
    if hosts != 1:
        return None
    return match[1], match[2], headers, close
