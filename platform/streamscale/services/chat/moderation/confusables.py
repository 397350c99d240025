"""Look-alike letters from Unicode's own data: UTS #39 confusables, small capitals, fillers.

The confusables come from `confusable-homoglyphs` (Unicode's confusables.txt as JSON, pure
Python). Its table is symmetric (each pair both ways); UTS #39 maps each source character
to one prototype, and a prototype is never itself a source, so every group is a star: the
prototype is the member with more than one partner, or the one that is ASCII, or the
lower code point. A character's skeleton is its prototype.

Only non-ASCII characters are mapped: ASCII stays as written, so "m" is not read as "rn"
nor "1" as "l" (leetspeak has its own, word-list-only readings in :mod:`.normalise`). A
prototype that is the skeleton of an ASCII letter becomes that letter ("rn" -> "m"), and
small capitals, which UTS #39 pairs with Cyrillic or Greek ("ʙ" with "в"), become the
lowercase letter their Unicode name gives ("LATIN LETTER SMALL CAPITAL B" -> "b").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

__all__ = ["FILLERS", "INVISIBLE_SPACES", "look_alikes"]

FILLERS = frozenset("\u115f\u1160\u17b4\u17b5\u3164\uffa0")
"""Default-ignorable letters (Hangul fillers, Khmer inherent vowels): drawn as nothing,
yet not category Cf, so they need naming. Cf, Mn, variation selectors and tags go by
category."""
INVISIBLE_SPACES = frozenset("\u2800")
"""Blank glyphs that are not whitespace (braille pattern blank): read as a space."""

_SMALL_CAPITAL = re.compile(
    r"^(LATIN|GREEK|CYRILLIC) (?:LETTER SMALL CAPITAL|SMALL CAPITAL LETTER|"
    r"CAPITAL LETTER SMALL CAPITAL) (.+)$"
)
_MODIFIER_SMALL_CAPITAL = re.compile(r"^MODIFIER LETTER SMALL CAPITAL (.+)$")


def _small_capital(ch: str) -> str | None:
    """The lowercase letter a small capital is drawn as, from its Unicode name."""
    name = unicodedata.name(ch, "")
    match = _SMALL_CAPITAL.match(name)
    script, rest = (match.group(1), match.group(2)) if match else ("LATIN", "")
    if not match:
        modifier = _MODIFIER_SMALL_CAPITAL.match(name)
        if modifier is None:
            return None
        rest = modifier.group(1)
    try:
        return unicodedata.lookup(f"{script} SMALL LETTER {rest}")
    except KeyError:
        return None


def _prototypes(pairs: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    """Source character -> prototype, recovered from the symmetric pair table."""
    out: dict[str, str] = {}
    for ch, partners in pairs.items():
        if len(ch) != 1 or len(partners) != 1:
            continue  # a multi-character target, or a prototype with several sources
        other = partners[0]["c"]
        if (
            len(other) > 1  # a string: only a prototype is one
            or len(pairs.get(other, ())) > 1  # a prototype with several sources
            or (not ch.isascii() and (other.isascii() or ord(other) < ord(ch)))
        ):
            out[ch] = other
    return out


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(
        ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch)[0] != "M"
    )
    return unicodedata.normalize("NFC", text)


def _build(pairs: dict[str, list[dict[str, str]]], extra: Iterable[str]) -> dict[int, str]:
    proto = _prototypes(pairs)
    ascii_skeletons = {
        proto[c]: c for c in "abcdefghijklmnopqrstuvwxyz" if c in proto and len(proto[c]) > 1
    }

    def resolve(ch: str, depth: int = 0) -> str:
        if ch.isascii() or depth > 4:
            return ch
        small = _small_capital(ch)
        target = small if small is not None else proto.get(ch, ch)
        target = ascii_skeletons.get(target, target)
        if target == ch:
            return ch
        return "".join(resolve(c, depth + 1) for c in _clean(target))

    table: dict[int, str] = {}
    for ch in {*proto, *extra}:
        if ch.isascii():
            continue
        mapped = resolve(ch)
        if mapped != ch and mapped.isprintable():
            table[ord(ch)] = mapped
    return table


@functools.cache
def look_alikes() -> dict[int, str]:
    """``str.translate`` table: non-ASCII look-alike -> casefolded, ASCII-first skeleton.

    Built once (~30 ms) from the package's data; apply it after NFKC and casefold.
    """
    from confusable_homoglyphs import confusables

    pairs: dict[str, list[dict[str, str]]] = confusables.confusables_data
    small_capitals = (
        chr(cp) for cp in range(0x250, 0xAB00) if "SMALL CAPITAL" in unicodedata.name(chr(cp), "")
    )
    return _build(pairs, small_capitals)
