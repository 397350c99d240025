"""Cursor encoding: a round trip for every (created_at, id), only ValueError for junk."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscale.backends.storage._cursor import decode_cursor, encode_cursor

aware = st.datetimes(  # clear of year 1 and 9999, where a zone shift leaves datetime's range
    min_value=datetime(1900, 1, 1),
    max_value=datetime(9000, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=13))]),
)
ids = st.text(min_size=1).filter(lambda s: "\x00" not in s)


@given(created_at=aware, row_id=ids)
def test_round_trip(created_at: datetime, row_id: str) -> None:
    decoded_at, decoded_id = decode_cursor(encode_cursor(created_at, row_id))
    assert decoded_at == created_at
    assert decoded_at.tzinfo is UTC
    assert decoded_id == row_id


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


junk = st.one_of(
    st.text(),
    st.binary().map(_b64),
    st.text().map(lambda t: _b64(t.encode("utf-8", "surrogatepass"))),
    st.tuples(st.text(), st.text()).map(lambda p: _b64(f"{p[0]}|{p[1]}".encode(errors="replace"))),
    st.tuples(st.datetimes(), st.text()).map(
        lambda p: _b64(f"{p[0].isoformat()}|{p[1]}".encode(errors="replace"))
    ),
)


@given(cursor=junk)
def test_decoding_junk_raises_only_value_error(cursor: str) -> None:
    try:
        decode_cursor(cursor)
    except ValueError as exc:
        message = str(exc)
    else:
        return
    assert message == "invalid cursor"


@pytest.mark.parametrize(
    "raw",
    [
        b"2026-01-01T00:00:00|abc",  # naive
        b"2026-01-01T00:00:00+00:00|",  # no id
        b"2026-01-01T00:00:00+00:00",  # no separator
        b"0001-01-01T00:00:00+01:00|abc",  # before the first UTC instant Python can hold
        b"9999-12-31T23:59:59-01:00|abc",  # after the last one
        b"2026-01-01T00:00:00+00:00|a\x00b",  # NUL: PostgreSQL text cannot hold it
        b"\xff\xfe|abc",
    ],
)
def test_rejected(raw: bytes) -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        decode_cursor(_b64(raw))
