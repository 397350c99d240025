"""The one exception the HLS packaging code raises for bad input."""

from __future__ import annotations


class HLSError(ValueError):
    """Bad input: malformed codec config or sample, or an invalid playlist request.

    `status` is the HTTP status an origin should answer with when the error comes from a
    request (400 for a malformed or too-far-ahead blocking reload); packaging errors keep
    the default 400 too, since they also mean "the caller sent something unusable".
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
