"""Validators for user-supplied text, shared by the API schemas (and tested with hypothesis).

Each returns the normalised value or raises ValueError with a message fit for a person.
Case rules: usernames keep the case the user typed but are unique case-insensitively;
emails are trimmed and stored lower-cased (unique, compared case-insensitively).
"""

from __future__ import annotations

import re
import unicodedata

USERNAME_MIN, USERNAME_MAX = 3, 30
PASSWORD_MIN, PASSWORD_MAX = 8, 128
RESERVED_USERNAMES = frozenset(
    {"admin", "administrator", "root", "system", "api", "me", "moderator", "streamscale",
     "support", "staff", "null", "undefined"}
)
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")

# The same rules as JSON Schema patterns, for the OpenAPI document (ECMA-262 and Python
# `re` read them alike: explicit classes only, no \s, no lookaround). tests check that
# pattern and validator agree.
SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # isspace
CONTROL = r"\x00-\x1f\x7f-\x9f"  # category Cc
USERNAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[{SPACE}]*{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_LABEL}[{SPACE}]*$"
EMAIL_LOCAL_PATTERN = rf"^[{SPACE}]*[^@]{{1,64}}@"  # at most 64 before the @ (no lookahead)
PASSWORD_PATTERN = rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"
TAG_PATTERN = rf"^[{SPACE}]*[A-Za-z0-9][A-Za-z0-9-]*[{SPACE}]*$"
EMAIL_MAX = 254


def text_pattern(*, min_len: int, multiline: bool = False) -> str:
    """The pattern of `text()`: whitespace at the ends (trimmed), no control characters
    inside (but newlines if multiline), and something besides whitespace unless empty."""
    control = r"\x00-\x09\x0b-\x1f\x7f-\x9f" if multiline else CONTROL
    solid = f"[^{control}{SPACE}]"
    core = f"{solid}(?:[^{control}]*{solid})?"
    return f"^[{SPACE}]*{core if min_len else f'(?:{core})?'}[{SPACE}]*$"


def username(value: str) -> str:
    if not USERNAME_MIN <= len(value) <= USERNAME_MAX:
        raise ValueError(f"must be {USERNAME_MIN} to {USERNAME_MAX} characters long")
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            "may contain only ASCII letters, digits and underscores, and must start "
            "with a letter"
        )
    if value.lower() in RESERVED_USERNAMES:
        raise ValueError(f"{value!r} is reserved")
    return value


def email(value: str) -> str:
    if len(value) > EMAIL_MAX:  # as sent, like maxLength in the spec; so after trimming too
        raise ValueError(f"must be at most {EMAIL_MAX} characters long")
    value = value.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("must look like name@example.com")
    if len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local) or ".." in local:
        raise ValueError("has an invalid part before the @")
    if local.startswith(".") or local.endswith("."):
        raise ValueError("has an invalid part before the @")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise ValueError("has an invalid domain after the @")
    return value.lower()


def unicode_text(value: str) -> str:
    """Refuse lone UTF-16 surrogates: JSON can escape them, UTF-8 cannot hold them."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def password(value: str) -> str:
    unicode_text(value)
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise ValueError(f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long")
    if not value.strip():
        raise ValueError("must not be only whitespace")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def text(value: str, *, min_len: int, max_len: int, multiline: bool = False) -> str:
    """Trimmed, NFC-normalised free text without control characters.

    The maximum holds for the text as sent (maxLength in the spec) and as stored.
    """
    if len(value) > max_len:
        raise ValueError(f"must be at most {max_len} characters long")
    value = unicodedata.normalize("NFC", unicode_text(value).strip())
    if not min_len <= len(value) <= max_len:
        if min_len == 0:
            raise ValueError(f"must be at most {max_len} characters long")
        raise ValueError(f"must be {min_len} to {max_len} characters long")
    allowed = {"\n"} if multiline else set()
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        raise ValueError("must not contain control characters")
    return value


def tags(values: list[str]) -> list[str]:
    """Lower-cased, de-duplicated (order kept), at most 10 of 1 to 25 characters."""
    if len(values) > 10:
        raise ValueError("at most 10 tags")
    out: list[str] = []
    for raw in values:
        tag = raw.strip()  # at most 25 as sent (the spec's maxLength), ASCII before lowering
        if len(raw) > 25 or not tag or not _TAG.fullmatch(tag):
            raise ValueError(
                f"tag {raw!r}: 1 to 25 characters of a-z, 0-9 and '-', starting with a "
                "letter or digit"
            )
        tag = tag.lower()
        if tag not in out:
            out.append(tag)
    return out
