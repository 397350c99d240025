"""Script data: onMetaData, with and without @setDataFrame, through the AMF0 decoder."""

from __future__ import annotations

import pytest

from streamscale.protocols.flv import FLVError, parse_script
from streamscale.protocols.rtmp import ECMAArray, encode_amf0


def test_set_data_frame_on_metadata() -> None:
    meta = ECMAArray(width=320.0, height=240.0, framerate=30.0, encoder="Lavf61", stereo=True)
    tag = parse_script(encode_amf0("@setDataFrame", "onMetaData", meta))
    assert (tag.name, tag.set_data_frame, tag.properties) == ("onMetaData", True, meta)
    assert (tag.number("width"), tag.number("encoder"), tag.number("nope")) == (320.0, None, None)


def test_plain_call_with_non_object_argument() -> None:
    tag = parse_script(encode_amf0("onCuePoint", "x", 1.0))
    assert (tag.name, tag.set_data_frame, tag.properties, tag.args) == (
        "onCuePoint",
        False,
        {},
        ("x", 1.0),
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "does not start with a name"),
        (encode_amf0(1.0), "does not start with a name"),
        (encode_amf0("@setDataFrame"), "does not start with a name"),
        (b"\x02\x00\x09onMeta", "malformed script data"),
    ],
)
def test_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(FLVError, match=message):
        parse_script(payload)
