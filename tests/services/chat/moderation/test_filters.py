# ruff: noqa: RUF001 (look-alike letters are the test data)
"""Banned words (with the Scunthorpe allowlist), safe regex filters, link policy."""

from __future__ import annotations

import time

import pytest

from streamscale.services.chat.moderation import (
    InvalidRule,
    LinkPolicy,
    LinkRules,
    RegexFilter,
    WordList,
    compile_safe,
    find_domains,
    fold,
    normalise,
)
from streamscale.services.chat.moderation.filters import REGEX_INPUT_CHARS


@pytest.fixture
def words() -> WordList:
    return WordList.of(["ass", "cunt", "fuck*", "butt", "bad"], allowed=["Scunthorpe"])


CAUGHT = [
    "ass", "ASS", "a s s", "a.s.s", "@ss", "4ss", "aaaass", "asssss",
    "you are b a d", "b\u200bad", "bàd", "ＢＡＤ", "baaaad", "fucking", "f.u.c.k",
    "fuuuuck", "Fück", "buuutt", "this is a b a d word", "ｃｕｎｔ", "cu\u00adnt",
]  # fmt: skip
PASSED = [
    "class", "assistant", "Scunthorpe", "s c u n t h o r p e", "bass guitar", "badge",
    "but why", "passing", "embarrassing", "a 5 5", "glass of water", "good game",
    "I had a bad day".replace("bad", "rad"), "",
]  # fmt: skip


@pytest.mark.parametrize("text", CAUGHT)
def test_banned_words_are_caught_through_evasions(words: WordList, text: str) -> None:
    assert words.match(normalise(text)) is not None


@pytest.mark.parametrize("text", PASSED)
def test_whole_words_and_allowlist_avoid_false_positives(words: WordList, text: str) -> None:
    assert words.match(normalise(text)) is None


def test_which_entry_matched(words: WordList) -> None:
    assert words.match(normalise("what the fuuuucking hell")) == "fuck*"
    assert words.match(normalise("b.a.d")) == "bad"


def test_prefix_entries_need_the_allowlist() -> None:
    words = WordList.of(["ass*"])
    assert words.match(normalise("assistant")) == "ass*"
    words.allow("assistant")
    assert words.match(normalise("my assistant")) is None
    assert words.match(normalise("asshole")) == "ass*"


def test_words_are_added_and_removed_at_run_time() -> None:
    words = WordList()
    assert words.match(normalise("bad")) is None
    assert words.add(" BÁD ") == "bad"
    assert words.match(normalise("so bad")) == "bad"
    assert words.remove("bad")
    assert not words.remove("bad")
    assert words.match(normalise("so bad")) is None
    assert words.entries == set()


@pytest.mark.parametrize("entry", ["", "   ", "*", "two words", "a1b", "x" * 65])
def test_bad_entries_are_rejected(entry: str) -> None:
    with pytest.raises(InvalidRule):
        WordList().add(entry)


# --- regex -------------------------------------------------------------------------------

SAFE = [r"free\s+v-?bucks", r"\d{3}-\d{4}", r"(a|b)*c", r"[a-z]{2,10}\.[a-z]{2,5}", r"^!\w+"]
UNSAFE = [
    ("nested quantifier", r"(a+)+b"),
    ("nested via group repeat", r"(?:.*a){2}b"),
    ("quantified lookahead body", r"(?=a+)+"),
    ("overlapping alternation", r"(a|aa)*b"),
    ("multi-char alternation repeated", r"(?:ab|cd){1,3}"),
    ("polynomial", r".*a.*b"),
    ("big bounded product", r"a{0,50}a{0,50}b"),
    ("backreference", r"(x)\1"),
    ("invalid", r"["),
    ("empty", ""),
    ("too long", "a" * 201),
]


@pytest.mark.parametrize("pattern", SAFE)
def test_safe_patterns_compile(pattern: str) -> None:
    compile_safe(pattern)


@pytest.mark.parametrize(("case", "pattern"), UNSAFE, ids=[u[0] for u in UNSAFE])
def test_catastrophic_patterns_are_rejected(case: str, pattern: str) -> None:
    with pytest.raises(InvalidRule):
        compile_safe(pattern)


@pytest.mark.parametrize(
    "pattern", [r"a*b", r"\w+x", r".*x", r"(a|b)*c", r"\w{1,30}\.\w{2,10}x", r"a{1,20}b{1,20}c"]
)
def test_worst_case_of_an_accepted_pattern_is_bounded(pattern: str) -> None:
    regex = RegexFilter("worst", pattern)
    text = "a" * (REGEX_INPUT_CHARS * 4)
    start = time.perf_counter()
    regex.matches(text, text)
    assert time.perf_counter() - start < 0.05


def test_regex_matches_raw_and_folded_text() -> None:
    regex = RegexFilter("vbucks", r"free\s+v-?bucks")
    assert regex.matches("FREE vbucks here", fold("FREE vbucks here"))
    text = "ｆｒｅｅ Ｖ-ｂｕｃｋｓ"
    assert regex.matches(text, fold(text))
    assert not regex.matches("free stuff", "free stuff")


# --- links -------------------------------------------------------------------------------

LINKS = [
    ("go to example.com now", ["example.com"]),
    ("https://evil.xyz/path?q=1", ["evil.xyz"]),
    ("www.foo.bar/x", ["foo.bar"]),
    ("example[.]com", ["example.com"]),
    ("example(dot)com", ["example.com"]),
    ("example dot com", ["example.com"]),
    ("ＥＸＡＭＰＬＥ．ＣＯＭ", ["example.com"]),
    ("example。com example•com exаmple∙com", ["example.com"] * 3),
    ("clips.twitch.tv/abc and youtube.com", ["clips.twitch.tv", "youtube.com"]),
    ("e.g. node.js or file.txt, i.e. nothing", []),
    ("version 1.2.3 costs 4.99", []),
    ("great stream. so cool", []),
]


@pytest.mark.parametrize(("text", "domains"), LINKS)
def test_link_detection(text: str, domains: list[str]) -> None:
    assert find_domains(fold(text)) == domains


def test_link_detection_is_linear_on_hostile_input() -> None:
    for text in ["a." * 1000, " [" * 1000, " dot" * 500, "x" * 2000 + ".com"]:
        start = time.perf_counter()
        find_domains(fold(text))
        assert time.perf_counter() - start < 0.02


def test_link_policies() -> None:
    rules = LinkRules()
    text = fold("see clips.twitch.tv/x and spam.xyz")
    assert rules.verdict(text) is None  # allow all
    rules.policy = LinkPolicy.BLOCK_ALL
    assert rules.verdict(text) == ("block", "clips.twitch.tv")
    rules.policy = LinkPolicy.ALLOW_LISTED
    rules.allow_domain("twitch.tv")
    assert rules.verdict(text) == ("block", "spam.xyz")
    assert rules.verdict(fold("clips.twitch.tv/x")) is None  # subdomain of a listed one
    rules.policy = LinkPolicy.HOLD
    assert rules.verdict(text) == ("hold", "spam.xyz")
    assert rules.verdict(fold("no links here")) is None


@pytest.mark.parametrize("domain", ["", "not a domain", "localhost", "-x.com", "a..com"])
def test_bad_domains_are_rejected(domain: str) -> None:
    with pytest.raises(InvalidRule):
        LinkRules().allow_domain(domain)
