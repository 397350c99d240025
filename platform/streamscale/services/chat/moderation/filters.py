"""Word, regex and link filters: pure matchers over :mod:`.normalise` output.

Banned words match whole words, on every normalised candidate form (look-alikes,
invisible characters, splits, leetspeak undone). An entry of ``MIN_AFFIX_LETTERS`` or
more letters also matches inside a longer word ("xxfuckxx", "fuckface"), which is where
the Scunthorpe problem lives: "Scunthorpe" holds "cunt", "cocktail" holds "cock". The
allowlist exempts whole words, so a channel that bans "cunt" allows "Scunthorpe"; shorter
entries ("ass") match whole words only, so "class" and "assistant" pass. An entry ending
in ``*`` also matches words that start with it ("ass*" catches "asshole", and
"assistant" until allowed). README ("Chat") states what this costs on ordinary chat.

Regex filters are written by channel moderators, so a pattern is untrusted input that
could hang a chat worker (catastrophic backtracking). We chose a static check over a
run-time timeout: it needs no extra dependency and keeps matching deterministic. A
pattern is rejected if it is long, uses backreferences, nests a quantifier inside a
quantified group, repeats an alternation of multi-character branches, or has more than
one unbounded quantifier (see :func:`compile_safe`); the text it runs on is capped at
``REGEX_INPUT_CHARS``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streamscale.services.errors import ValidationFailed

from .normalise import Normalised, collapse, fold, run_lengths

__all__ = [
    "MAX_PATTERN_CHARS",
    "InvalidRule",
    "RegexFilter",
    "WordList",
    "compile_safe",
]

MAX_PATTERN_CHARS = 200
REGEX_INPUT_CHARS = 500
"""Regex filters see at most this much of a message (the chat message limit)."""
MAX_BACKTRACK_STEPS = REGEX_INPUT_CHARS * REGEX_INPUT_CHARS
MAX_WORD_ENTRIES = 10_000
MIN_AFFIX_LETTERS = 4
"""Entries this long (repeated letters counted once) also match inside longer words."""


class InvalidRule(ValidationFailed):
    """A filter rule (word, pattern, domain) that cannot be accepted (HTTP 400)."""

    code = "invalid_moderation_rule"


def _canonical(word: str) -> str:
    """The stored form of a banned or allowed word: folded letters, runs capped at two."""
    folded = fold(word.strip())
    if not folded or len(folded) > 64 or not folded.isalpha():
        raise InvalidRule(f"a listed word must be 1-64 letters, got {word!r}")
    return collapse(folded, 2)


@dataclass(slots=True)
class WordList:
    """A banned-word list with its allowlist; entries are added and removed at run time.

    Persist ``entries`` and ``allowed`` (plain sets of strings); the index is derived.
    """

    entries: set[str] = field(default_factory=set)
    allowed: set[str] = field(default_factory=set)
    # c1 key -> [(entry, run lengths)]; prefix entries are indexed by their key length.
    _exact: dict[str, list[tuple[str, tuple[int, ...]]]] = field(default_factory=dict, repr=False)
    _prefix: dict[str, list[tuple[str, tuple[int, ...]]]] = field(default_factory=dict, repr=False)
    _prefix_lengths: set[int] = field(default_factory=set, repr=False)
    _allowed_keys: set[str] = field(default_factory=set, repr=False)
    _needles: list[tuple[str, str]] = field(default_factory=list, repr=False)
    _infix: dict[str, str] = field(default_factory=dict, repr=False)
    _infix_lengths: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._reindex()

    @classmethod
    def of(cls, entries: Iterable[str] = (), allowed: Iterable[str] = ()) -> WordList:
        words = cls()
        for entry in entries:
            words.add(entry)
        for entry in allowed:
            words.allow(entry)
        return words

    def add(self, entry: str) -> str:
        """Ban ``entry`` ("word" or "prefix*"); returns the stored form."""
        prefix = entry.strip().endswith("*")
        word = _canonical(entry.strip().removesuffix("*"))
        if len(self.entries) >= MAX_WORD_ENTRIES:
            raise InvalidRule(f"a word list holds at most {MAX_WORD_ENTRIES} entries")
        stored = word + "*" if prefix else word
        self.entries.add(stored)
        self._reindex()
        return stored

    def remove(self, entry: str) -> bool:
        prefix = entry.strip().endswith("*")
        try:
            stored = _canonical(entry.strip().removesuffix("*")) + ("*" if prefix else "")
        except InvalidRule:
            return False
        if stored not in self.entries:
            return False
        self.entries.discard(stored)
        self._reindex()
        return True

    def allow(self, word: str) -> str:
        stored = _canonical(word)
        self.allowed.add(stored)
        self._reindex()
        return stored

    def disallow(self, word: str) -> bool:
        try:
            stored = _canonical(word)
        except InvalidRule:
            return False
        found = stored in self.allowed
        self.allowed.discard(stored)
        self._reindex()
        return found

    def _reindex(self) -> None:
        self._exact.clear()
        self._prefix.clear()
        self._prefix_lengths.clear()
        for stored in self.entries:
            word = stored.rstrip("*")
            key = collapse(word, 1)
            target = self._prefix if stored.endswith("*") else self._exact
            target.setdefault(key, []).append((stored, run_lengths(word)))
            if stored.endswith("*"):
                self._prefix_lengths.add(len(key))
        self._allowed_keys = {collapse(w, 1) for w in self.allowed}
        needles = ((collapse(e.rstrip("*"), 1), e) for e in sorted(self.entries))
        self._needles = [(needle, e) for needle, e in needles if len(needle) >= 3]
        self._infix = {n: e for n, e in self._needles if len(n) >= MIN_AFFIX_LETTERS}
        self._infix_lengths = sorted({len(n) for n in self._infix})

    def match_word(self, word: str) -> str | None:
        """The entry that bans this one candidate word, if any."""
        key = collapse(word, 1)
        if word in self.allowed or key in self._allowed_keys:
            return None
        exact = self._exact.get(key)
        if exact is not None:
            runs = run_lengths(word)
            for stored, need in exact:
                if _covers(runs, need):
                    return stored
        for length in self._prefix_lengths:
            for stored, need in self._prefix.get(key[:length], ()):
                if _covers(run_lengths(word), need):
                    return stored
        return None

    def match(self, text: Normalised) -> str | None:
        """The first entry that a message's normalised forms hit, or None."""
        if not self.entries:
            return None
        for word in text.words:
            hit = self.match_word(word)
            if hit is not None:
                return hit
        for run in text.runs:
            hit = self._match_in_run(run)
            if hit is not None:
                return hit
        if self._infix:
            for word in text.affixable:
                hit = self._match_inside(word)
                if hit is not None:
                    return hit
        return None

    def _match_inside(self, word: str) -> str | None:
        """A long entry inside a longer word ("xxfuckxx"), unless the word is allowed."""
        key = collapse(word, 1)
        if len(key) <= self._infix_lengths[0]:
            return None  # as long as the entry: the whole-word match has decided
        if word in self.allowed or key in self._allowed_keys:
            return None
        for allowed in self._allowed_keys:
            if allowed in key:
                key = key.replace(allowed, " ")
        for length in self._infix_lengths:
            for start in range(len(key) - length + 1):
                hit = self._infix.get(key[start : start + length])
                if hit is not None:
                    return hit
        return None

    def _match_in_run(self, run: str) -> str | None:
        """Substring search inside spaced-out letters, after blanking allowed words."""
        key = collapse(run, 1)
        for allowed in self._allowed_keys:
            if allowed in key:
                key = key.replace(allowed, " ")
        for needle, stored in self._needles:
            if needle in key:
                return stored
        return None


def _covers(have: tuple[int, ...], need: tuple[int, ...]) -> bool:
    """Every run in the message is at least as long as the banned word's ("baad" ⊇ "bad").

    Prefix entries have fewer runs than the word; only the prefix's runs count, except
    the last one, which may continue into the rest of the word.
    """
    if len(have) < len(need):
        return False
    return all(h >= n for h, n in zip(have, need, strict=False))


# --- regex filters -----------------------------------------------------------------------

_sre: Any = importlib.import_module("re._parser")  # the stdlib regex parser (no stub)
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_BACKREFS = {"GROUPREF", "GROUPREF_EXISTS", "GROUPREF_IGNORE", "GROUPREF_LOC_IGNORE"}


def _children(op: str, arg: Any) -> list[Any]:
    if op == "SUBPATTERN":
        return [arg[-1]]
    if op == "BRANCH":
        return list(arg[1])
    if op in {"ASSERT", "ASSERT_NOT"}:
        return [arg[1]]
    if op == "ATOMIC_GROUP":
        return [arg]
    return []


def _check_tree(tree: Any, *, in_repeat: bool) -> int:
    """Raise on unsafe constructs; return the product of the quantifier ranges."""
    product = 1
    for op_code, arg in tree:
        op = str(op_code)
        if op in _BACKREFS:
            raise InvalidRule("backreferences are not allowed in filters")
        if op in _REPEATS and arg[1] > 1:
            if in_repeat:
                raise InvalidRule("nested quantifiers are not allowed, e.g. (a+)+")
            high = arg[1]
            product *= REGEX_INPUT_CHARS if high == _sre.MAXREPEAT else min(high, REGEX_INPUT_CHARS)
            product *= _check_tree(arg[2], in_repeat=True)
            continue
        if op == "BRANCH" and in_repeat and not all(b.getwidth() == (1, 1) for b in arg[1]):
            raise InvalidRule("a repeated alternation may only hold single characters")
        children = [arg[2]] if op in _REPEATS else _children(op, arg)
        for child in children:
            product *= _check_tree(child, in_repeat=in_repeat)
    return product


def compile_safe(pattern: str) -> re.Pattern[str]:
    """Compile a moderator's pattern, or raise :class:`InvalidRule` saying why not.

    Backtracking cost is bounded by the text length times the product of the quantifier
    ranges (nesting and repeated alternation are rejected, so that bound holds); with the
    text capped at ``REGEX_INPUT_CHARS`` the budget allows one unbounded quantifier, or
    several small bounded ones: a few milliseconds at worst on this machine.
    """
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidRule(f"a filter pattern must be 1-{MAX_PATTERN_CHARS} characters")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
        tree = _sre.parse(pattern, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise InvalidRule(f"not a valid regular expression: {exc}") from None
    if REGEX_INPUT_CHARS * _check_tree(tree, in_repeat=False) > MAX_BACKTRACK_STEPS:
        raise InvalidRule(
            "pattern too costly: use at most one unbounded quantifier (*, +, {n,}) and "
            "small bounded ones ({1,20})"
        )
    return compiled


@dataclass(slots=True)
class RegexFilter:
    """A named, vetted pattern; persist ``name`` and ``pattern``."""

    name: str
    pattern: str
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.compiled = compile_safe(self.pattern)

    def matches(self, text: str, folded: str) -> bool:
        """Match the raw text and its folded form (fullwidth letters and accents fold away)."""
        raw = text[:REGEX_INPUT_CHARS]
        if self.compiled.search(raw):
            return True
        folded = folded[:REGEX_INPUT_CHARS]
        return folded != raw and self.compiled.search(folded) is not None
