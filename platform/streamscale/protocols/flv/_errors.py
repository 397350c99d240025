"""The FLV layer's one error type (and its unsupported-codec refinement)."""

from __future__ import annotations


class FLVError(Exception):
    """A malformed FLV tag body (or SPS/config inside one) from the publisher."""


class FLVUnsupportedCodec(FLVError):
    """Well-formed, but a codec the ingest does not take (e.g. HEVC via Enhanced RTMP).

    `codec` is a short name (`"hvc1"`, `"av01"`, `"mp3"`) to put in the refusal message.
    """

    def __init__(self, codec: str) -> None:
        super().__init__(f"unsupported codec {codec!r}: publish H.264 video and AAC audio")
        self.codec = codec
