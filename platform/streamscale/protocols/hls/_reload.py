"""Blocking playlist reload (RFC 8216bis 6.2.5.2) and resource availability, as pure logic.

The origin parses the query once, rejects what the spec says to reject (400), then waits
on its own clock until `playlist_ready` holds (answering 503 after its timeout). Nothing
here blocks or knows about time; the origin owns both.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ._errors import HLSError

_MAX_DIGITS = 18  # msn/part values are far below 10**18; longer input is an attack


@dataclass(frozen=True, slots=True)
class BlockingRequest:
    """The delivery directives of a playlist request; all None means a plain reload."""

    msn: int | None = None
    part: int | None = None
    skip: Literal["YES", "v2"] | None = None


@dataclass(frozen=True, slots=True)
class LivePosition:
    """The live edge of a rendition, as the reload rules see it.

    `last_msn` is the last complete segment (-1 before the first); `part_msn` and
    `last_part` name the newest part, in the open segment or the last complete one.
    """

    last_msn: int = -1
    part_msn: int = -1
    last_part: int = -1
    ended: bool = False


class Availability(enum.Enum):
    """What an origin should do with a request for a part or a segment."""

    AVAILABLE = "available"  # serve the bytes
    PENDING = "pending"  # the next one (preload hint / open segment): hold the request
    NOT_FOUND = "not_found"  # too far ahead, or never existed: 404
    EXPIRED = "expired"  # fell out of the retained window: 404


def _decimal(name: str, value: str) -> int:
    if not value or len(value) > _MAX_DIGITS or not value.isascii() or not value.isdigit():
        raise HLSError(f"{name} must be a non-negative decimal integer")
    return int(value)


def parse_query(query: str | bytes | Mapping[str, str]) -> BlockingRequest:
    """Read `_HLS_msn`, `_HLS_part` and `_HLS_skip`, ignoring other parameters.

    A malformed or repeated directive, or `_HLS_part` without `_HLS_msn`, is a 400.
    """
    if isinstance(query, bytes):
        query = query.decode("ascii", "replace")
    if isinstance(query, str):
        params: dict[str, str] = {}
        for item in query.lstrip("?").split("&"):
            key, _, value = item.partition("=")
            if key.startswith("_HLS_"):
                if key in params:
                    raise HLSError(f"{key} given more than once")
                params[key] = value
    else:
        params = {k: v for k, v in query.items() if k.startswith("_HLS_")}
    msn = part = None
    skip: Literal["YES", "v2"] | None = None
    if "_HLS_msn" in params:
        msn = _decimal("_HLS_msn", params["_HLS_msn"])
    if "_HLS_part" in params:
        if msn is None:
            raise HLSError("_HLS_part requires _HLS_msn")
        part = _decimal("_HLS_part", params["_HLS_part"])
    if "_HLS_skip" in params:
        value = params["_HLS_skip"]
        if value == "YES":
            skip = "YES"
        elif value == "v2":
            skip = "v2"
        else:
            raise HLSError("_HLS_skip must be YES or v2")
    return BlockingRequest(msn, part, skip)


def advance_part_limit(part_target_s: float) -> int:
    """How many parts ahead a request may reach: three seconds' worth, at least three."""
    return max(3, math.floor(3 / part_target_s + 1e-9)) if part_target_s < 1 else 3


def check_request(
    req: BlockingRequest, pos: LivePosition, *, part_target_s: float, parts_per_segment: int
) -> None:
    """Raise HLSError (400) for a request too far past the live edge to ever block on."""
    if req.msn is None or pos.ended:
        return
    if req.msn > pos.last_msn + 2:
        raise HLSError(
            f"_HLS_msn={req.msn} is more than two segments past the live edge ({pos.last_msn})"
        )
    if req.part is None:
        return
    ahead = (req.msn - pos.part_msn) * parts_per_segment + req.part - pos.last_part
    if ahead > advance_part_limit(part_target_s):
        raise HLSError(f"_HLS_msn={req.msn}&_HLS_part={req.part} is beyond the advance part limit")


def playlist_ready(req: BlockingRequest, pos: LivePosition) -> bool:
    """True once the playlist holds the requested segment (or part) or anything later."""
    if req.msn is None or pos.ended:
        return True
    if req.part is None:
        return pos.last_msn >= req.msn
    return (pos.part_msn, pos.last_part) >= (req.msn, req.part)
