# ruff: noqa: RUF001 (look-alike letters are the test data)
"""The normaliser: known evasions are undone, and it is total, bounded and stable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamscale.services.chat.moderation.confusables import look_alikes
from streamscale.services.chat.moderation.normalise import (
    MAX_INPUT_CHARS,
    MAX_RUN_LETTERS,
    MAX_WORD_CHARS,
    collapse,
    displayed,
    fold,
    leet_readings,
    normalise,
    run_lengths,
)

EVASIONS = [
    # (case, message, a word that must be among the candidates)
    ("case", "BaD", "bad"),
    ("fullwidth", "ＢＡＤ", "bad"),
    ("math letters", "𝐛𝐚𝐝", "bad"),
    ("circled", "ⓑⓐⓓ", "bad"),
    ("accents", "bàd", "bad"),
    ("zalgo", "b̸̡a̷͝d̶̢", "bad"),
    ("cyrillic look-alikes", "ѕhіt", "shit"),
    ("greek look-alikes", "αss", "ass"),
    ("leet digits", "h3ll0", "hello"),
    ("leet symbols", "$h!t", "shit"),
    ("leet at", "@ss", "ass"),
    ("leet 1 as i", "1d10t", "idiot"),
    ("leet 1 as l", "ki11", "kill"),
    ("pipe as l", "ki||er", "killer"),
    ("trailing bangs", "idiot!!!", "idiot"),
    ("parentheses are not c", "(bad)", "bad"),
    ("spaces", "b a d", "bad"),
    ("dots", "b.a.d", "bad"),
    ("underscores", "b_a_d", "bad"),
    ("dashes and stars", "b-a*d", "bad"),
    ("split word", "sh.it", "shit"),
    ("zero width space", "b\u200bad", "bad"),
    ("zero width joiner", "b\u200da\u200dd", "bad"),
    ("soft hyphen", "b\u00adad", "bad"),
    ("word joiner", "b\u2060ad", "bad"),
    ("repeated letters capped at two", "baaaaad", "baad"),
    ("spaced with punctuation", "b - a - d", "bad"),
    ("mixed", "Ｓh1Ｔ", "shit"),
]


@pytest.mark.parametrize(("case", "text", "word"), EVASIONS, ids=[c[0] for c in EVASIONS])
def test_known_evasions_produce_the_plain_word(case: str, text: str, word: str) -> None:
    assert word in normalise(text).words, case


def test_spaced_letters_across_words_form_a_run() -> None:
    assert normalise("this is a b a d word").runs == ("abad",)
    assert normalise("b a d").runs == ("bad",)
    assert normalise("a b").runs == ()  # two letters: a word candidate, not a run
    assert "ab" in normalise("a b").words


def test_plain_numbers_are_not_read_as_leetspeak() -> None:
    norm = normalise("a 5 5 and 2024")
    assert "ass" not in norm.words
    assert "zoz4" not in norm.words
    assert norm.runs == ()


def test_both_readings_of_ambiguous_symbols() -> None:
    assert leet_readings("k1ll") == ("kill", "klll")
    assert leet_readings("h3llo") == ("hello",)
    assert leet_readings("1234") == ("1234",)


def test_collapse_and_run_lengths() -> None:
    assert collapse("baaaad", 1) == "bad"
    assert collapse("baaaad", 2) == "baad"
    assert collapse("class", 2) == "class"
    assert run_lengths("baaad") == (1, 2, 1)
    assert run_lengths("") == ()


def test_fold_drops_controls_and_keeps_spaces() -> None:
    assert fold("A\tB\x00C") == "a bc"
    assert fold("Ǆ") == "dz"  # casefolded, then the caron dropped


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fold_is_idempotent(text: str) -> None:
    once = fold(text)
    assert fold(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_normalise_never_raises_and_is_bounded(text: str) -> None:
    norm = normalise(text)
    assert len(norm.folded) <= MAX_INPUT_CHARS
    assert all(len(w) <= max(MAX_WORD_CHARS, MAX_RUN_LETTERS) for w in norm.words)
    assert len(norm.words) <= 4 * MAX_INPUT_CHARS
    assert all(len(r) <= MAX_RUN_LETTERS for r in norm.runs)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=200))
def test_ascii_fast_path_agrees_with_the_unicode_path(text: str) -> None:
    # "é" forces the general path; compare everything before it.
    assert fold(text + "é")[: len(fold(text))] == fold(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12))
def test_any_plain_word_is_its_own_candidate(word: str) -> None:
    assert collapse(word, 2) in normalise(f"hi {word} there").words


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=12))
def test_spacing_a_word_out_is_caught(word: str) -> None:
    assert collapse(word, 2) in normalise(" ".join(word)).words
    assert collapse(word, 2) in normalise(".".join(word)).words


def test_right_to_left_override_is_read_in_display_order() -> None:
    assert displayed("hey \u202ekcuf\u202c you") == "hey fuck\u202c you"  # pop: order ends
    assert fold("hey \u202ekcuf\u202c you") == "hey fuck you"  # and controls go
    assert displayed("\u202eab\ncd") == "ba\ncd"  # a line break ends the override
    assert displayed("plain") == "plain"
    norm = normalise("\u202etihs")
    assert norm.folded == "shit" and {"shit", "tihs"} <= norm.words  # shown and stored


def test_look_alike_table_comes_from_unicode_data() -> None:
    table = look_alikes()
    assert len(table) > 4000  # UTS #39 confusables, not a hand table
    assert not any(chr(cp).isascii() for cp in table)  # ASCII stays as written: "m" != "rn"
    assert fold("ꜰᴜᴄᴋ ʙɪᴛᴄʜ ꓝꓴꓚꓗ ᏚᎻᎥᎢ") == "fuck bitch fuck shit"
    # Other scripts keep their own letters where they look like nothing Latin.
    assert fold("안녕하세요 こんにちは 你好") == "안녕하세요 こんにちは 你好"


@pytest.mark.parametrize("filler", ["\u3164", "\u115f", "\u1160", "\uffa0", "\u17b4",
                                    "\u200b", "\u2060", "\ufe0f", "\U000e0041", "\u180e",
                                    "\u202e", "\u2066", "\u00ad", "\u034f"])  # fmt: skip
def test_invisible_characters_are_dropped(filler: str) -> None:
    assert fold(f"ab{filler}cd") == "abcd" or fold(f"ab{filler}cd") == "abdc"  # RLO reverses


def test_digits_stay_digits_unless_they_touch_a_letter() -> None:
    assert leet_readings("id:0000046297.455~") == ("id:0000046297.455~",)
    assert "ass" in normalise("a55").words
    assert "ass" not in normalise("~B005|00000009|0000046297.455~ hello").words
