"""The engine end to end: rule order, reasons, user messages, and totality."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamscale.services.chat.moderation import (
    Action,
    ChannelState,
    Decision,
    MessageContext,
    ModerationEngine,
    ReasonKind,
    Room,
    WordList,
)

from .conftest import FakeClock, FakeModel


def check(engine: ModerationEngine, text: str, user: str = "viewer") -> Decision:
    return engine.check(MessageContext("chan", user, text))


def test_global_and_channel_lists_are_named(engine: ModerationEngine, room: Room) -> None:
    engine.global_words.add("slur")
    room.ban_word("mod", "spoiler")
    hit = check(engine, "a s.l.u.r")
    assert (hit.action, hit.reasons[0].rule, hit.reasons[0].detail) == (
        Action.BLOCK, "global", "slur")  # fmt: skip
    hit = check(engine, "SP0ILER!!", user="v2")
    assert (hit.reasons[0].kind, hit.reasons[0].rule) == (ReasonKind.BANNED_WORD, "channel")
    assert "spoiler" not in hit.message  # senders are not told the word
    assert check(engine, "Scunthorpe assistant class", user="v3").action is Action.ALLOW


def test_regex_reason_names_the_filter(engine: ModerationEngine, room: Room) -> None:
    room.add_regex("mod", "vbucks", r"free\s+v-?bucks")
    hit = check(engine, "FREE   V-BUCKS at my site")
    assert hit.reasons[0].kind is ReasonKind.REGEX and hit.reasons[0].rule == "vbucks"


def test_link_policy_applies_to_viewers_not_staff(engine: ModerationEngine, room: Room) -> None:
    room.set_link_policy("mod", "block_all")
    hit = check(engine, "join example[.]com")
    assert hit.action is Action.BLOCK and hit.reasons[0].detail == "example.com"
    assert check(engine, "schedule at example.com", user="mod").action is Action.ALLOW
    room.set_link_policy("mod", "allow_listed")
    room.allow_domain("mod", "example.com")
    assert check(engine, "see www.example.com/x", user="v2").action is Action.ALLOW
    room.set_link_policy("mod", "hold")
    held = check(engine, "see evil.xyz", user="v3")
    assert held.action is Action.HOLD and held.reasons[0].kind is ReasonKind.LINK


def test_ban_is_checked_before_content(engine: ModerationEngine, room: Room) -> None:
    room.ban_word("mod", "bad")
    room.ban("mod", "viewer", "spam")
    assert check(engine, "bad").reasons[0].kind is ReasonKind.BAN


def test_unknown_channel_is_a_key_error(engine: ModerationEngine) -> None:
    with pytest.raises(KeyError):
        engine.check(MessageContext("nope", "u", "hi"))


def test_state_round_trips_through_plain_fields(clock: FakeClock, room: Room) -> None:
    room.ban_word("mod", "fuck*")
    room.allow_word("mod", "class")
    room.ban("mod", "troll", "spam")
    s = room.state
    copy = ChannelState(
        s.channel_id, s.owner_id, set(s.moderators), s.slow_mode_s, s.followers_only_s,
        WordList.of(s.words.entries, s.words.allowed), dict(s.regexes), s.links, s.thresholds,
        dict(s.timeouts), dict(s.bans), list(s.audit), s.next_seq,
    )  # fmt: skip
    engine = ModerationEngine(clock=clock)
    engine.load_channel(copy)
    assert engine.check(MessageContext("chan", "v", "fucking")).action is Action.BLOCK
    assert engine.check(MessageContext("chan", "troll", "hi")).reasons[0].kind is ReasonKind.BAN


def test_prune_forgets_idle_users(engine: ModerationEngine, room: Room, clock: FakeClock) -> None:
    engine.rate_messages = 20  # the optional bucket (off on the platform: PostLimits)
    room.set_slow_mode("mod", 5)
    check(engine, "hi")
    clock.advance(31)
    assert engine.prune() == 2
    assert room.state.recent_post_at == {} and room.state.recent_rate == {}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=3000), user=st.sampled_from(["viewer", "mod", "owner", "x"]))
def test_check_never_raises(clock: FakeClock, text: str, user: str) -> None:
    engine = ModerationEngine(clock=clock, toxicity=FakeModel(default=0.5), rate_messages=10**9)
    room = engine.open_channel("chan", "owner")
    room.ban_word("owner", "bad")
    room.ban_word("owner", "fuck*")
    room.allow_word("owner", "badge")
    room.add_regex("owner", "digits", r"\d{5,}")
    room.set_link_policy("owner", "allow_listed")
    decision = engine.check(MessageContext("chan", user, text))
    assert decision.action in set(Action)
    assert (decision.action is Action.ALLOW) == (decision.message == "")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=20))
def test_check_many_agrees_with_check(texts: list[str]) -> None:
    def fresh() -> ModerationEngine:
        engine = ModerationEngine(clock=FakeClock(), toxicity=FakeModel(default=0.7))
        engine.open_channel("chan", "owner").ban_word("owner", "bad")
        return engine

    batch = [MessageContext("chan", f"u{i}", t) for i, t in enumerate(texts)]
    one, many = fresh(), fresh()
    assert many.check_many(batch) == [one.check(ctx) for ctx in batch]
