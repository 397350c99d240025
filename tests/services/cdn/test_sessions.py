"""Viewer sessions and cache keys from requests (CMCD in the query or a header)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscale.services.cdn.sessions import cache_target, cmcd_pairs, session_id


def _cmcd_query(payload: str) -> bytes:
    return b"CMCD=" + quote(payload, safe="").encode()


@pytest.mark.parametrize(("target", "key"), [
    (b"/live/s/a/0.m4s", b"/live/s/a/0.m4s"),
    (b"/live/s/a/0.m4s?CMCD=sid%3D%22x%22", b"/live/s/a/0.m4s"),
    (b"/live/s/a/index.m3u8?_HLS_msn=3&CMCD=br%3D1&_HLS_part=1",
     b"/live/s/a/index.m3u8?_HLS_msn=3&_HLS_part=1"),
    (b"/live/s/a/index.m3u8?_HLS_msn=3", b"/live/s/a/index.m3u8?_HLS_msn=3"),
    (b"/live/s/a/index.m3u8?XCMCD=1", b"/live/s/a/index.m3u8?XCMCD=1"),
])
def test_cache_target_drops_only_cmcd(target: bytes, key: bytes) -> None:
    assert cache_target(target) == key


@pytest.mark.parametrize(("payload", "sid"), [
    ('bl=2100,br=3200,ot=v,sid="6e2fb550-c457-11e9",su,tb=6000', "6e2fb550-c457-11e9"),
    ('sid="a,b"', "a,b"),  # a comma inside the quotes: the fast path steps aside
    ('sid="with%percent"', "with%percent"),
])
def test_session_from_cmcd_query(payload: str, sid: str) -> None:
    target = b"/live/s/a/1.m4s?" + _cmcd_query(payload)
    assert session_id(target, [], "10.0.0.1") == sid


def test_session_from_cmcd_header_then_address() -> None:
    headers = [(b"cmcd-session", b'cid="c",sid="from-header"')]
    assert session_id(b"/live/s/a/1.m4s", headers, "10.0.0.1") == "from-header"
    ua = [(b"user-agent", b"player/1")]
    first = session_id(b"/live/s/a/1.m4s", ua, "10.0.0.1")
    assert first.startswith("addr:")
    assert session_id(b"/live/s/a/2.m4s", ua, "10.0.0.1") == first
    assert session_id(b"/live/s/a/2.m4s", ua, "10.0.0.2") != first
    assert session_id(b"/live/s/a/2.m4s", [(b"user-agent", b"other")], "10.0.0.1") != first


def test_overlong_or_unprintable_sid_falls_back_to_address() -> None:
    too_long = b"/x?" + _cmcd_query('sid="' + "x" * 65 + '"')
    assert session_id(too_long, [], "10.0.0.1").startswith("addr:")
    control = b"/x?" + _cmcd_query('sid="a\nb"')
    assert session_id(control, [], "10.0.0.1").startswith("addr:")


def test_cmcd_pairs_tolerates_escapes_and_flags() -> None:
    assert cmcd_pairs('bs,br=3,sid="a\\"b",su') == {"bs": "", "br": "3", "sid": 'a"b', "su": ""}


@given(st.binary(max_size=300), st.binary(max_size=80), st.text(max_size=40))
def test_never_raises_and_keys_are_stable(query: bytes, agent: bytes, peer: str) -> None:
    target = b"/live/s/a/1.m4s?" + query
    sid = session_id(target, [(b"user-agent", agent), (b"cmcd-session", agent)], peer)
    assert 0 < len(sid) <= 64 or sid.startswith("addr:")
    key = cache_target(target)
    assert cache_target(key) == key
    _, _, kept = key.partition(b"?")
    assert not any(item.startswith(b"CMCD=") for item in kept.split(b"&"))
