# ruff: noqa: RUF001 (the leetspeak table holds look-alike symbols)
"""Text normalisation against filter evasion: the forms that word filters match against.

Evasions handled: case and compatibility forms (NFKC + casefold, so fullwidth and
mathematical letters fold), accents and zalgo (combining marks dropped), invisible
characters (every format character: zero-width, bidi controls, tags; variation selectors;
Hangul and Khmer fillers), look-alike letters (UTS #39 skeletons from Unicode's
confusables data, small capitals: :mod:`.confusables`), right-to-left overrides with
reversed text (read in display order), leetspeak (with two readings where a symbol is
ambiguous: 1 and | read as i or l), letters split by separators ("b a d", "b.a.d",
"fu ck", "f u.c k") and repeated letters ("baaaad").

Everything here is pure and total: any ``str`` in, bounded output, no exceptions.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .confusables import FILLERS, INVISIBLE_SPACES, look_alikes

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

# Look-alikes NFKC leaves alone (Cyrillic, Greek, Cherokee, Lisu, small capitals, ...):
# UTS #39 skeletons from Unicode's confusables data, applied after casefold.
_LOOK_ALIKES = look_alikes()
_BLANKS = str.maketrans(dict.fromkeys(INVISIBLE_SPACES, " ") | dict.fromkeys(FILLERS, None))
_RLO, _PDF, _PDI = "\u202e", "\u202c", "\u2069"

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
_LEET_STRETCH = re.compile("[\\w" + re.escape("".join(sorted(_LEET_CHARS))) + "]+")
_HAS_LETTER = re.compile(r"[^\W\d_]")

_DROP_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Cc", "Cs", "Co", "Cn"})
_LETTERS = re.compile(r"[^\W\d_]+")
_ALNUM = re.compile(r"[^\W_]+")
_TRIPLES = re.compile(r"(.)\1\1+", re.DOTALL)
_DOUBLES = re.compile(r"(.)\1+", re.DOTALL)


def _strip(text: str) -> str:
    """Marks, format characters (zero-width, bidi controls, tags), fillers: all gone."""
    decomposed = unicodedata.normalize("NFD", text.translate(_BLANKS))
    kept = [
        " " if ch.isspace() else ch
        for ch in decomposed
        if ch.isspace() or unicodedata.category(ch) not in _DROP_CATEGORIES
    ]
    return unicodedata.normalize("NFC", "".join(kept))


def _fold_once(text: str) -> str:
    text = _strip(unicodedata.normalize("NFKC", text).casefold())
    # Recomposed first (Hangul syllables stay syllables), then look-alikes mapped.
    return unicodedata.normalize("NFKC", _strip(text.translate(_LOOK_ALIKES)))


def displayed(text: str) -> str:
    """The text in the order a viewer sees it where a right-to-left override (U+202E)
    reverses it, up to its pop (U+202C), an isolate's end (U+2069) or a line break.

    Only the override matters for Latin letters: embeddings and isolates keep their order.
    """
    if _RLO not in text:
        return text
    out: list[str] = []
    i = 0
    while (start := text.find(_RLO, i)) >= 0:
        out.append(text[i:start])
        end = start + 1
        while end < len(text) and text[end] not in (_PDF, _PDI, "\n"):
            end += 1
        out.append(text[start + 1 : end][::-1])
        i = end
    out.append(text[i:])
    return "".join(out)


def fold(text: str) -> str:
    """Case-, compatibility- and accent-folded text, look-alikes mapped, format chars gone.

    Idempotent: ``fold(fold(s)) == fold(s)``. Used for regex filters, link detection and
    the toxicity model, and as the first step of :func:`normalise`.
    """
    text = displayed(text[:MAX_INPUT_CHARS])
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

    "!" and "|" at either end are punctuation ("idiot!!", "|quote|"), not letters. Only
    stretches of letters, digits and leet symbols that hold a letter are read: in
    "id:0000046297.455~" the digits stay digits ("455" is no "ass").
    """
    if not _LEET_CHARS.intersection(chunk) or not any(ch.isalpha() for ch in chunk):
        return (chunk,)
    chunk = chunk.strip("!|")

    def read(table: dict[int, str]) -> str:
        return _LEET_STRETCH.sub(
            lambda m: m[0].translate(table) if _HAS_LETTER.search(m[0]) else m[0], chunk
        )

    first = read(_LEET_PRIMARY)
    if not _AMBIGUOUS.intersection(chunk):
        return (first,)
    return (first, read(_LEET_ALTERNATE))


@dataclass(frozen=True, slots=True)
class Normalised:
    """What the filters match against.

    ``words``: candidate whole words, every reading, repeated letters capped at two (the
    filter compares run lengths, so "baaad" matches "bad" and "asss" matches "ass"),
    including a word split by spaces or punctuation ("fu ck", "sh.it", "f u.c k": the
    letters of 2-4 neighbouring pieces joined).
    ``affixable``: the candidates of single chunks, where a long banned word is also found
    inside a longer one ("xxfuckxx"); joins across chunks are not ("push it").
    ``runs``: letters spaced out across chunks ("b a d" -> "bad"), where a banned word
    may be found as a substring: spacing letters out is itself the evasion signal.
    """

    folded: str
    words: frozenset[str]
    runs: tuple[str, ...]
    affixable: frozenset[str] = frozenset()


MAX_JOINED_PIECES = 4
"""A banned word split into more pieces than this must be spaced out letter by letter."""
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")


def normalise(text: str) -> Normalised:
    """Fold ``text`` and produce every candidate form the word filters look at."""
    folded = fold(text)
    words: set[str] = set()
    affixable: set[str] = set()
    runs: list[str] = []
    run: list[str] = []
    sequence: list[str] = []  # the letter pieces of the message in order (first reading)

    def end_run() -> None:
        if len(run) >= 2:
            joined = collapse("".join(run), 2)[:MAX_RUN_LETTERS]
            words.add(joined)
            if len(run) >= 3:
                runs.append(joined)
        run.clear()

    for chunk in folded.split():
        chunk = _APOSTROPHE.sub("", chunk)  # "let's" is one word, never "let" + "s"
        readings = leet_readings(chunk)
        singles: list[str] = []
        for reading in readings:
            pieces = _LETTERS.findall(reading)
            for piece in pieces:
                words.add(collapse(piece, 2)[:MAX_WORD_CHARS])
            if len(pieces) > 1:
                # "b.a.d", "sh.it", "f_u_c_k": the chunk's letters with separators removed.
                joined = collapse("".join(pieces), 2)[:MAX_WORD_CHARS]
                words.add(joined)
                if "/" not in chunk:  # a URL's or path's letters run together innocently
                    affixable.add(joined)
            if reading is readings[0]:
                sequence.extend(pieces)
                if pieces and all(len(p) == 1 for p in pieces):
                    singles = pieces  # "b", "u.c": spaced-out letters, a run goes on
        affixable.update(collapse(p, 2)[:MAX_WORD_CHARS] for r in readings
                         for p in _LETTERS.findall(r))  # fmt: skip
        if _mixes_digits(chunk):
            words.update(w[:MAX_WORD_CHARS] for w in _ALNUM.findall(chunk))
        if not _ALNUM.search(chunk):
            continue  # punctuation alone ("b - a - d") breaks neither a run nor a join
        if singles:
            run.extend(singles)
        else:
            end_run()
    end_run()
    for i in range(len(sequence) - 1):  # "fu ck", "fu c k", "sh it": neighbours joined
        for j in range(i + 2, min(i + MAX_JOINED_PIECES, len(sequence)) + 1):
            window = sequence[i:j]
            joined = "".join(window)
            if len(joined) > MAX_WORD_CHARS:
                break
            if any(len(p) > 1 for p in window):  # letters alone are runs (allowlist-aware)
                words.add(collapse(joined, 2))
    if _RLO in text:  # folded is the display order; the stored order's words count too
        for chunk in fold(text.replace(_RLO, " ")).split():
            for reading in leet_readings(chunk):
                words.update(collapse(p, 2)[:MAX_WORD_CHARS] for p in _LETTERS.findall(reading))
    return Normalised(
        folded=folded, words=frozenset(words), runs=tuple(runs), affixable=frozenset(affixable)
    )


def _mixes_digits(chunk: str) -> bool:
    """Whether the literal chunk (digits kept) is worth matching too ("mp3", "b2b")."""
    return any(ch.isdigit() for ch in chunk) and any(ch.isalpha() for ch in chunk)
