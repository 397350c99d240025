"""Toxicity: thresholds with a fake model, batching, and the real shipped model."""

from __future__ import annotations

import math

import pytest

from streamscale.services.chat.moderation import (
    Action,
    MessageContext,
    ModerationEngine,
    ReasonKind,
    ToxicityModel,
    ToxicityThresholds,
)

from .conftest import FakeClock, FakeModel


@pytest.mark.parametrize(
    ("score", "verdict"),
    [(0.0, None), (0.59, None), (0.6, "hold"), (0.94, "hold"), (0.95, "block"), (1.0, "block"),
     (math.nan, "hold")],
)  # fmt: skip
def test_threshold_bands(score: float, verdict: str | None) -> None:
    assert ToxicityThresholds(hold=0.6, block=0.95).verdict(score) == verdict


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        ToxicityThresholds(hold=0.9, block=0.5)


def make(clock: FakeClock, model: FakeModel) -> ModerationEngine:
    engine = ModerationEngine(clock=clock, toxicity=model)
    engine.open_channel("chan", "owner").set_thresholds("owner", hold=0.5, block=0.9)
    return engine


def test_engine_applies_thresholds(clock: FakeClock) -> None:
    model = FakeModel({"nice": 0.1, "meh": 0.7, "awful": 0.99})
    engine = make(clock, model)
    nice, meh, awful = (engine.check(MessageContext("chan", u, u.split("-")[0]))
                        for u in ("nice-1", "meh-2", "awful-3"))  # fmt: skip
    assert nice.action is Action.ALLOW and nice.toxicity == 0.1
    assert meh.action is Action.HOLD and meh.reasons[0].kind is ReasonKind.TOXICITY
    assert meh.reasons[0].detail == "0.700" and "review" in meh.message
    assert awful.action is Action.BLOCK and awful.toxicity == 0.99


def test_model_is_skipped_when_a_cheap_rule_blocks(clock: FakeClock) -> None:
    model = FakeModel()
    engine = make(clock, model)
    engine.room("chan").ban_word("owner", "bad")
    assert engine.check(MessageContext("chan", "u", "bad")).action is Action.BLOCK
    assert model.calls == []


def test_a_batch_is_scored_in_one_model_call(clock: FakeClock) -> None:
    model = FakeModel({"two": 0.99})
    engine = make(clock, model)
    engine.room("chan").ban_word("owner", "bad")
    batch = [MessageContext("chan", f"u{i}", text) for i, text in enumerate(["one", "bad", "two"])]
    actions = [d.action for d in engine.check_many(batch)]
    assert actions == [Action.ALLOW, Action.BLOCK, Action.BLOCK]
    assert model.calls == [["one", "two"]]


def test_model_sees_the_text_as_written(clock: FakeClock) -> None:
    # Folded (case, width), but digits stay digits: leetspeak is for the word lists.
    model = FakeModel()
    make(clock, model).check(MessageContext("chan", "u", "\uff27\uff27 run 0000046297.455~ F4CK"))
    assert model.calls == [["gg run 0000046297.455~ f4ck"]]


def test_a_hold_from_links_survives_a_low_score(clock: FakeClock) -> None:
    engine = make(clock, FakeModel())
    engine.room("chan").set_link_policy("owner", "hold")
    decision = engine.check(MessageContext("chan", "u", "see spam.xyz"))
    assert decision.action is Action.HOLD
    assert [r.kind for r in decision.reasons] == [ReasonKind.LINK]


# --- the real model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_model() -> ToxicityModel:
    shipped = pytest.importorskip("streamscale.services.chat.moderation.shipped_model")
    pytest.importorskip("profanity_check")
    model = shipped.ProfanityCheckModel()
    model.load()
    assert model.uses_fast_path
    return model  # type: ignore[no-any-return]


def test_shipped_model_scores_toxic_high_and_benign_low(real_model: ToxicityModel) -> None:
    toxic, benign = real_model.scores(
        ["you are a worthless fucking idiot", "what a lovely stream, thanks for the tips"]
    )
    assert toxic > 0.95
    assert benign < 0.1


def test_fast_scorer_matches_scikit_learn(real_model: ToxicityModel) -> None:
    from streamscale.services.chat.moderation.shipped_model import ProfanityCheckModel

    slow = ProfanityCheckModel(fast=False)
    slow.load()
    texts = ["", "gg", "shit happens", "I love this song", "kill yourself", "Ünïcödé stuff 123",
             "idiot idiot idiot", "go back to where you came from"]  # fmt: skip
    assert real_model.scores(texts) == pytest.approx(slow.scores(texts), abs=1e-9)


def test_engine_with_the_shipped_model(real_model: ToxicityModel, clock: FakeClock) -> None:
    engine = ModerationEngine(clock=clock, toxicity=real_model)
    engine.open_channel("chan", "owner")
    bad = engine.check(MessageContext("chan", "a", "you are a worthless fucking idiot"))
    good = engine.check(MessageContext("chan", "b", "what a lovely stream, thanks for the tips"))
    # By default the model only holds for review; a channel may choose to auto-block.
    assert bad.action is Action.HOLD and bad.reasons[0].kind is ReasonKind.TOXICITY
    assert good.action is Action.ALLOW
    engine.room("chan").set_thresholds("owner", hold=0.6, block=0.95)
    bad = engine.check(MessageContext("chan", "a", "you are a worthless fucking idiot"))
    assert bad.action is Action.BLOCK and bad.reasons[0].kind is ReasonKind.TOXICITY
