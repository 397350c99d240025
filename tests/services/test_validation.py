"""The validators behind the API schemas, exercised with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscale.services import validation as v


@given(st.text(max_size=40))
def test_username_accepts_only_the_stated_alphabet(value: str) -> None:
    try:
        out = v.username(value)
    except ValueError as exc:
        assert str(exc)
        return
    assert out == value
    assert 3 <= len(out) <= 30 and out[0].isascii() and out[0].isalpha()
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in out)


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{2,29}", fullmatch=True))
def test_valid_usernames_pass(value: str) -> None:
    if value.lower() not in v.RESERVED_USERNAMES:
        assert v.username(value) == value


@given(st.emails())
def test_emails_are_lowercased_and_idempotent(value: str) -> None:
    try:
        out = v.email(value)
    except ValueError:
        return  # hypothesis emails include forms we state we do not accept (quoted, IPs)
    assert out == out.lower() and v.email(out) == out


@given(st.text(max_size=300))
def test_email_never_raises_other_errors(value: str) -> None:
    try:
        v.email(value)
    except ValueError:
        pass


@pytest.mark.parametrize("value", ["a@b", "@b.com", "a@", "a..b@c.com", "a@-b.com", "a b@c.com"])
def test_bad_emails(value: str) -> None:
    with pytest.raises(ValueError, match=r"must|invalid"):
        v.email(value)


@given(st.text(max_size=200))
def test_text_output_is_clean(value: str) -> None:
    try:
        out = v.text(value, min_len=1, max_len=50)
    except ValueError:
        return
    assert 1 <= len(out) <= 50 and out == out.strip()
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in out)


@given(st.lists(st.text(max_size=30), max_size=12))
def test_tags_are_normalised(values: list[str]) -> None:
    try:
        out = v.tags(values)
    except ValueError:
        return
    assert len(out) == len(set(out)) <= 10
    assert all(t == t.lower() and 1 <= len(t) <= 25 for t in out)


@given(st.text(max_size=200))
def test_password_rules(value: str) -> None:
    try:
        assert v.password(value) == value
    except ValueError:
        assert len(value) < 8 or len(value) > 128 or not value.strip() or "\x00" in value
