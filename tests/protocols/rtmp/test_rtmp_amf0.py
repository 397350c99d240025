"""AMF0: byte-exact encodings per type, round trips, and strict decoding errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscale.protocols.rtmp import (
    UNDEFINED,
    AMF0Date,
    AMF0Error,
    AMF0Value,
    ECMAArray,
    decode_amf0,
    encode_amf0,
)

CASES: list[tuple[AMF0Value, bytes]] = [
    (0.0, b"\x00" + b"\x00" * 8),
    (1.0, b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00"),
    (True, b"\x01\x01"),
    (False, b"\x01\x00"),
    ("connect", b"\x02\x00\x07connect"),
    ("", b"\x02\x00\x00"),
    ("é", b"\x02\x00\x02\xc3\xa9"),
    ({"a": 1.0}, b"\x03\x00\x01a\x00\x3f\xf0" + b"\x00" * 6 + b"\x00\x00\x09"),
    ({}, b"\x03\x00\x00\x09"),
    (None, b"\x05"),
    (UNDEFINED, b"\x06"),
    (ECMAArray(b=True), b"\x08\x00\x00\x00\x01\x00\x01b\x01\x01\x00\x00\x09"),
    ([1.0, None], b"\x0a\x00\x00\x00\x02\x00\x3f\xf0" + b"\x00" * 6 + b"\x05"),
    (AMF0Date(0.0, -60), b"\x0b" + b"\x00" * 8 + b"\xff\xc4"),
    ("x" * 70000, b"\x0c\x00\x01\x11\x70" + b"x" * 70000),
]


@pytest.mark.parametrize(("value", "encoded"), CASES)
def test_encode_and_decode_each_type(value: AMF0Value, encoded: bytes) -> None:
    assert encode_amf0(value) == encoded
    assert decode_amf0(encoded) == [value]
    assert type(decode_amf0(encoded)[0]) is type(value)


def test_ints_encode_as_numbers_and_many_values_concatenate() -> None:
    assert decode_amf0(encode_amf0("publish", 0, None, "key")) == ["publish", 0.0, None, "key"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x00", "truncated AMF0 number"),
        (b"\x01", "truncated AMF0 boolean"),
        (b"\x02\x00", "truncated AMF0 string length"),
        (b"\x02\x00\x05abc", "truncated AMF0 string"),
        (b"\x02\x00\x02\xff\xfe", "not UTF-8"),
        (b"\x0c\xff\xff\xff\xff", "truncated AMF0 string"),
        (b"\x03\x00\x01a\x05", "truncated AMF0 string length"),
        (b"\x03\x00\x00", "truncated AMF0 object end"),
        (b"\x08\x00\x00", "ECMA array count"),
        (b"\x0a\xff\xff\xff\xff\x05", "strict array claims"),
        (b"\x0b\x00", "truncated AMF0 date"),
        (b"\x09", "object end outside"),
        (b"\x07\x00\x01", "references"),
        (b"\x11\x01", "AMF3"),
        (b"\x0e", "unknown AMF0 type marker"),
        (b"\x0a\x00\x00\x00\x01" * 40 + b"\x05", "nesting"),
        (b"", None),
    ],
)
def test_malformed_input_raises_amf0_error(data: bytes, message: str | None) -> None:
    if message is None:
        assert decode_amf0(data) == []
        return
    with pytest.raises(AMF0Error, match=message):
        decode_amf0(data)


def test_typed_object_xml_and_unsupported_are_read_leniently() -> None:
    typed = b"\x10\x00\x01C\x00\x01k\x05\x00\x00\x09"
    assert decode_amf0(typed + b"\x0f\x00\x00\x00\x01x" + b"\x0d") == [{"k": None}, "x", UNDEFINED]


def test_encoder_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        encode_amf0(object())  # type: ignore[arg-type]


keys = st.text(max_size=8)
scalars = st.one_of(
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=20),
    st.none(),
    st.just(UNDEFINED),
    st.builds(AMF0Date, st.floats(allow_nan=False), st.integers(-720, 720)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4).map(ECMAArray),
    ),
    max_leaves=20,
)


@given(st.lists(values, max_size=4))
def test_round_trip(items: list[AMF0Value]) -> None:
    decoded = decode_amf0(encode_amf0(*items))
    assert decoded == items


@given(st.binary(max_size=200))
def test_only_amf0_error_escapes(data: bytes) -> None:
    try:
        decode_amf0(data)
    except AMF0Error:
        pass


def test_nan_survives_as_nan() -> None:
    (value,) = decode_amf0(encode_amf0(math.nan))
    assert isinstance(value, float)
    assert math.isnan(value)
