"""False positives on ordinary chat: the measurement behind the stated figures.

`ordinary_chat.txt` holds 568 lines of ordinary chat (greetings, game slang, emote codes,
scores, timestamps, URLs, version numbers, benchmark ids like the one in issue 11,
non-English greetings, words with a banned word inside: "Scunthorpe", "class",
"cocktail"). README ("Chat") and docs/chat-protocol.md state the figures asserted here;
a change that makes them worse fails these tests, and one that improves them should
lower the stated numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamscale.services.chat.moderation import (
    Action,
    MessageContext,
    ModerationEngine,
    ToxicityModel,
    ToxicityThresholds,
)

from .conftest import FakeClock

CORPUS = [
    line
    for line in (Path(__file__).parent / "ordinary_chat.txt").read_text("utf-8").splitlines()
    if line.strip()
]

# hold threshold -> ordinary lines the shipped model scores at or above it (of 568).
MODEL_FALSE_POSITIVES = {0.5: 16, 0.6: 14, 0.7: 11, 0.8: 7, 0.9: 5, 0.95: 1, 0.99: 0}
# What a threshold lets through, on a small sample of abuse (of 20 lines).
ABUSE = [
    "you are a worthless fucking idiot", "kill yourself", "shut up you stupid bitch",
    "go back to where you came from, loser", "fuck you", "you're trash, uninstall",
    "nobody likes you, you fat pig", "this streamer is a retard", "eat shit",
    "suck my dick", "what a dumbass", "you idiot", "stfu noob", "I hope you die",
    "piece of shit streamer", "kys", "you suck", "go to hell", "moron", "get cancer",
]  # fmt: skip
MODEL_ABUSE_CAUGHT = {0.9: 16, 0.95: 13}


def test_corpus_is_what_the_docs_describe() -> None:
    assert len(CORPUS) == 568
    assert len(set(CORPUS)) == len(CORPUS)


@pytest.fixture(scope="module")
def real_model() -> ToxicityModel:
    shipped = pytest.importorskip("streamscale.services.chat.moderation.shipped_model")
    model = shipped.ProfanityCheckModel()
    model.load()
    return model  # type: ignore[no-any-return]


def _engine_scores(model: ToxicityModel, texts: list[str]) -> list[float]:
    """What the engine feeds the model: scores as the engine records them."""
    engine = ModerationEngine(clock=FakeClock(), toxicity=model, rate_messages=10**9)
    engine.open_channel("chan", "owner")
    decisions = engine.check_many([MessageContext("chan", "viewer", t) for t in texts])
    scores = [d.toxicity for d in decisions]
    assert all(s is not None for s in scores)
    return [s for s in scores if s is not None]


def test_model_false_positive_rate_is_at_most_the_stated_one(real_model: ToxicityModel) -> None:
    scores = _engine_scores(real_model, CORPUS)
    measured = {t: sum(s >= t for s in scores) for t in MODEL_FALSE_POSITIVES}
    worse = {t: (n, MODEL_FALSE_POSITIVES[t]) for t, n in measured.items()
             if n > MODEL_FALSE_POSITIVES[t]}  # fmt: skip
    assert not worse, f"false positives (measured, stated) by threshold: {worse}"
    default = ToxicityThresholds().hold
    assert default == 0.95 and measured[default] <= 1  # 0.18%: the stated rate


def test_abuse_caught_at_the_stated_thresholds(real_model: ToxicityModel) -> None:
    scores = _engine_scores(real_model, ABUSE)
    for threshold, stated in MODEL_ABUSE_CAUGHT.items():
        assert sum(s >= threshold for s in scores) >= stated, threshold


def test_the_default_engine_holds_no_ordinary_line_but_one(real_model: ToxicityModel) -> None:
    engine = ModerationEngine(clock=FakeClock(), toxicity=real_model, rate_messages=10**9)
    engine.open_channel("chan", "owner")
    decisions = engine.check_many([MessageContext("chan", "viewer", t) for t in CORPUS])
    held = [t for t, d in zip(CORPUS, decisions, strict=True) if d.action is not Action.ALLOW]
    assert held == ["that was a stupid mistake by me"]
    assert "~B005|00000009|0000046297.455~ hello chat this is a benchmark message!!" in CORPUS
