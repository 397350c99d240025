# ruff: noqa: RUF001 (look-alike letters are the test data)
"""Word-list evasions (table-driven) and what catching them costs on ordinary chat.

Each variant is written the way people dodge a word list; the list bans a few words.
README ("Chat") states the two numbers asserted here: evasions caught out of the
variants tested, and ordinary-chat lines a typical list blocks (the Scunthorpe problem).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamscale.services.chat.moderation import WordList, normalise

BANNED = WordList.of(["fuck", "shit", "cunt", "bitch", "idiot", "ass"])

# (kind, message); each must be caught by BANNED. Escapes keep the invisible visible.
EVASIONS = [
    # affixes around a banned word
    ("affix", "xxfuckxx"), ("affix", "fuckface"), ("affix", "motherfucker"),
    ("affix", "gofuckyourself"), ("affix", "bullshit"), ("affix", "shitty stream"),
    ("affix", "ur an idiotlol"), ("affix", "bitchass"), ("affix", "supercunt"),
    ("affix", "zzzshitzzz"),
    # split by spaces or mixed punctuation
    ("split", "fu ck"), ("split", "f u.c k"), ("split", "sh it"), ("split", "s-h i_t"),
    ("split", "f*u*c*k"), ("split", "fu.ck off"), ("split", "b i t.c h"), ("split", "id iot"),
    ("split", "c u n t"), ("split", "f . u . c . k"), ("split", "bi-tch"), ("split", "a s s"),
    # small capitals and look-alikes from scripts the old table did not have
    ("look-alike", "ꜰᴜᴄᴋ"), ("look-alike", "ꜱʜɪᴛ"), ("look-alike", "ʙɪᴛᴄʜ"),
    ("look-alike", "ᴄᴜɴᴛ"), ("look-alike", "ɪᴅɪᴏᴛ"), ("look-alike", "ꓝꓴꓚꓗ"),
    ("look-alike", "ᏚᎻᎥᎢ"), ("look-alike", "ƒuck"), ("look-alike", "ſhit"),
    ("look-alike", "ѕhіt"), ("look-alike", "ℱ𝓊𝒸𝓀"), ("look-alike", "ᴀꜱꜱ"),
    # invisible filler and format characters
    ("invisible", "fu\u3164ck"), ("invisible", "fu\u115fck"), ("invisible", "fu\uffa0ck"),
    ("invisible", "f\u200bu\u200bc\u200bk"), ("invisible", "sh\ufe0fit"),
    ("invisible", "sh\u2060it"), ("invisible", "fu\u180eck"), ("invisible", "fu\U000e0041ck"),
    ("invisible", "sh\u034fit"), ("invisible", "cu\u00adnt"), ("invisible", "fu\u2800ck"),
    ("invisible", "bi\u17b4tch"), ("invisible", "i\u200dd\u200ci\u200eo\u200ft"),
    # right-to-left override with the word written backwards
    ("rtl", "\u202ekcuf"), ("rtl", "\u202etihs\u202c lol"), ("rtl", "hey \u202ekcuf uoy"),
    ("rtl", "\u202ehctib\u2069"), ("rtl", "\u202etoidi"),
    # several at once
    ("mixed", "ꜰ\u200bu ᴄk"), ("mixed", "\u202ekc\u3164uf"), ("mixed", "xxꜱʜɪᴛxx"),
    ("mixed", "sh 1t"), ("mixed", "ƒ\u200bu.ᴄ k"),
]  # fmt: skip
# Known gaps, kept in the count: a short entry inside a word is not matched (that would
# block "class" and "assistant"); ban the compounds ("dumbass") or use "ass*"-style entries.
MISSED = [("affix", "dumbass"), ("affix", "jackass"), ("affix", "smartass")]
EVASIONS_TESTED = len(EVASIONS) + len(MISSED)  # 60: 57 caught, 3 missed (stated)

# A typical channel list, for the Scunthorpe measurement on ordinary chat.
TYPICAL = WordList.of([
    "fuck", "shit", "cunt", "bitch", "bastard", "dick", "cock", "pussy", "whore", "slut",
    "asshole", "ass", "wank", "twat", "piss", "retard", "rape", "rapist", "penis", "anal",
    "nazi", "idiot", "moron", "crap",
])  # fmt: skip
CORPUS = [
    line
    for line in (Path(__file__).parent / "ordinary_chat.txt").read_text("utf-8").splitlines()
    if line.strip()
]
# Ordinary lines the typical list blocks (of 568): the Scunthorpe cost, stated in README.
SCUNTHORPE = {
    "good evening from Scunthorpe!",  # cunt
    "anyone else here from Penistone?",  # penis
    "reading Dickens on the break",  # dick
    "had shiitake mushrooms for dinner",  # shit (repeated letters count once)
    "making cocktails tonight",  # cock
    "my therapist says I should play more games",  # rapist
    "data analysis is my day job",  # anal
    "the analytics dashboard is down again",  # anal
    "the peacock skin is so pretty",  # cock
    "Hancock was a good movie",  # cock
    "grid a55 on the map",  # ass, read as leetspeak
}


@pytest.mark.parametrize(("kind", "text"), EVASIONS, ids=[f"{k}:{t!r}" for k, t in EVASIONS])
def test_evasion_is_caught(kind: str, text: str) -> None:
    assert BANNED.match(normalise(text)) is not None, kind


@pytest.mark.parametrize(("kind", "text"), MISSED, ids=[f"{k}:{t!r}" for k, t in MISSED])
def test_known_gaps_are_still_gaps(kind: str, text: str) -> None:
    # If one of these starts being caught, move it up and raise the stated count.
    assert BANNED.match(normalise(text)) is None, kind


def test_stated_evasion_count() -> None:
    caught = sum(BANNED.match(normalise(t)) is not None for _, t in [*EVASIONS, *MISSED])
    assert (caught, EVASIONS_TESTED) == (57, 60)


def test_scunthorpe_cost_on_ordinary_chat_is_at_most_the_stated_one() -> None:
    blocked = {line for line in CORPUS if TYPICAL.match(normalise(line)) is not None}
    assert blocked <= SCUNTHORPE, f"new false positives: {sorted(blocked - SCUNTHORPE)}"
    assert len(blocked) <= 11  # 1.9% of 568


def test_the_allowlist_removes_the_scunthorpe_cost_but_leetspeak() -> None:
    words = WordList.of(TYPICAL.entries, allowed=[
        "scunthorpe", "penistone", "dickens", "shiitake", "cocktails", "therapist",
        "analysis", "analytics", "peacock", "hancock"])  # fmt: skip
    blocked = [line for line in CORPUS if words.match(normalise(line)) is not None]
    assert blocked == ["grid a55 on the map"]  # leetspeak: no allowlist entry for that


def test_the_benchmark_line_is_not_read_as_a_banned_word() -> None:
    text = "~B005|00000009|0000046297.455~ hello chat this is a benchmark message!!"
    assert BANNED.match(normalise(text)) is None
