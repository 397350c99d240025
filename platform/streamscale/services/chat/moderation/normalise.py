# ruff: noqa: RUF001 (the look-alike table is made of look-alikes)
"""Text normalisation against filter evasion: the forms that word filters match against.

Evasions handled: case and compatibility forms (NFKC + casefold, so fullwidth and
mathematical letters fold), accents and zalgo (combining marks dropped), zero-width and
other format characters, look-alike letters from Cyrillic and Greek, leetspeak (with two
readings where a symbol is ambiguous: 1 and | read as i or l), letters split by
separators ("b a d", "b.a.d", "b_a_d") and repeated letters ("baaaad").

Everything here is pure and total: any ``str`` in, bounded output, no exceptions.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "MAX_INPUT_CHARS",
    "MAX_WORD_CHARS",
    "Normalised",
    "collapse",
    "fold",
    "leet_readings",
    "normalise",
    "run_lengths",
]

MAX_INPUT_CHARS = 2000
"""Input past this is ignored: chat messages are far shorter, and it bounds the work."""
MAX_WORD_CHARS = 64
"""Longer candidate words are cut: no banned word is that long."""
MAX_RUN_LETTERS = 48
"""Spaced-out letter runs ("b a d") are cut to this many letters."""

# Look-alikes NFKC leaves alone: Cyrillic and Greek letters drawn like Latin ones, and
# dots that are not ".". Lowercase only: the table is applied after casefold.
# fmt: off
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɑ": "a", "ɡ": "g", "ı": "i", "ȷ": "j",
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
        "。": ".", "｡": ".", "․": ".", "‧": ".", "∙": ".", "•": ".",
    }
)
# fmt: on

# Leetspeak, first reading. Only applied inside chunks that also hold a letter, so that
# plain numbers ("2024", "555") stay numbers.
# fmt: off
_LEET_COMMON = {
    "0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "6": "g",
    "2": "z", "@": "a", "$": "s", "!": "i", "+": "t", "€": "e", "£": "l",
    "¥": "y", "¢": "c", "×": "x",
}
# fmt: on
_LEET_PRIMARY = str.maketrans({**_LEET_COMMON, "1": "i", "|": "l"})
_LEET_ALTERNATE = str.maketrans({**_LEET_COMMON, "1": "l", "|": "i"})
_AMBIGUOUS = frozenset("1|")
_LEET_CHARS = frozenset(_LEET_COMMON) | _AMBIGUOUS

_DROP_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Cc", "Cs", "Co", "Cn"})
_LETTERS = re.compile(r"[^\W\d_]+")
_ALNUM = re.compile(r"[^\W_]+")
_TRIPLES = re.compile(r"(.)\1\1+", re.DOTALL)
_DOUBLES = re.compile(r"(.)\1+", re.DOTALL)


def _fold_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    kept = [
        " " if ch.isspace() else ch
        for ch in decomposed
        if ch.isspace() or unicodedata.category(ch) not in _DROP_CATEGORIES
    ]
    return unicodedata.normalize("NFKC", "".join(kept).translate(_CONFUSABLES))


def fold(text: str) -> str:
    """Case-, compatibility- and accent-folded text, look-alikes mapped, format chars gone.

    Idempotent: ``fold(fold(s)) == fold(s)``. Used for regex filters, link detection and
    the toxicity model, and as the first step of :func:`normalise`.
    """
    text = text[:MAX_INPUT_CHARS]
    if text.isascii():
        # Fast path for the common case: ASCII needs only lowercasing and control removal.
        if text.isprintable():
            return text.lower()
        kept = (" " if ch.isspace() else ch for ch in text if ch.isprintable() or ch.isspace())
        return "".join(kept).lower()
    out = _fold_once(text)
    # casefold and NFKC do not commute for a few characters: iterate to the fixed point.
    for _ in range(3):
        again = _fold_once(out)
        if again == out:
            break
        out = again
    # NFKC can expand a character 18-fold (U+FDFA): the output obeys the input cap too.
    return out[:MAX_INPUT_CHARS]


def collapse(word: str, max_run: int) -> str:
    """Cut every run of one repeated character to at most ``max_run`` (1 or 2)."""
    pattern = _DOUBLES if max_run <= 1 else _TRIPLES
    if pattern.search(word) is None:  # the common case, and a cheap one
        return word
    return pattern.sub(r"\1" if max_run <= 1 else r"\1\1", word)


def run_lengths(word: str) -> tuple[int, ...]:
    """Lengths of the runs of equal characters, each capped at 2 ("baad" -> (1, 2, 1))."""
    out: list[int] = []
    prev = ""
    for ch in word:
        if ch == prev:
            if out[-1] < 2:
                out[-1] += 1
        else:
            out.append(1)
            prev = ch
    return tuple(out)


def leet_readings(chunk: str) -> tuple[str, ...]:
    """The leetspeak readings of one folded chunk: one, or two where 1 or | is in it.

    "!" and "|" at either end are punctuation ("idiot!!", "|quote|"), not letters.
    """
    if not _LEET_CHARS.intersection(chunk) or not any(ch.isalpha() for ch in chunk):
        return (chunk,)
    chunk = chunk.strip("!|")
    first = chunk.translate(_LEET_PRIMARY)
    if not _AMBIGUOUS.intersection(chunk):
        return (first,)
    return (first, chunk.translate(_LEET_ALTERNATE))


@dataclass(frozen=True, slots=True)
class Normalised:
    """What the filters match against.

    ``words``: candidate whole words, every reading, repeated letters capped at two (the
    filter compares run lengths, so "baaad" matches "bad" and "asss" matches "ass").
    ``runs``: letters spaced out across chunks ("b a d" -> "bad"), where a banned word
    may be found as a substring: spacing letters out is itself the evasion signal.
    """

    folded: str
    words: frozenset[str]
    runs: tuple[str, ...]


def normalise(text: str) -> Normalised:
    """Fold ``text`` and produce every candidate form the word filters look at."""
    folded = fold(text)
    words: set[str] = set()
    runs: list[str] = []
    run: list[str] = []

    def end_run() -> None:
        if len(run) >= 2:
            joined = collapse("".join(run), 2)[:MAX_RUN_LETTERS]
            words.add(joined)
            if len(run) >= 3:
                runs.append(joined)
        run.clear()

    for chunk in folded.split():
        readings = leet_readings(chunk)
        single: str | None = None
        for reading in readings:
            pieces = _LETTERS.findall(reading)
            for piece in pieces:
                words.add(collapse(piece, 2)[:MAX_WORD_CHARS])
            if len(pieces) > 1:
                # "b.a.d", "sh.it", "f_u_c_k": the chunk's letters with separators removed.
                words.add(collapse("".join(pieces), 2)[:MAX_WORD_CHARS])
            if reading is readings[0] and len(pieces) == 1 and len(pieces[0]) == 1:
                single = pieces[0]
        if _mixes_digits(chunk):
            words.update(w[:MAX_WORD_CHARS] for w in _ALNUM.findall(chunk))
        if single is not None:
            run.append(single)
        elif _ALNUM.search(chunk):
            end_run()  # punctuation alone ("b - a - d") does not break a spaced-out run
    end_run()
    return Normalised(folded=folded, words=frozenset(words), runs=tuple(runs))


def _mixes_digits(chunk: str) -> bool:
    """Whether the literal chunk (digits kept) is worth matching too ("mp3", "b2b")."""
    return any(ch.isdigit() for ch in chunk) and any(ch.isalpha() for ch in chunk)
