"""Room rules with a fake clock: roles, timeouts, bans, modes, deletion, audit, appeals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamscale.services.chat.moderation import (
    Action,
    AppealStatus,
    AuditAction,
    AuditEntry,
    InvalidTransition,
    MessageContext,
    ModerationEngine,
    NotPermitted,
    ReasonKind,
    Role,
    Room,
)
from streamscale.services.errors import ValidationFailed

from .conftest import FakeClock


def say(engine: ModerationEngine, user: str, text: str = "hello", **kw: float | None) -> str:
    ctx = MessageContext("chan", user, text, follows_since=kw.get("follows_since"))
    decision = engine.check(ctx)
    return decision.action.value if not decision.reasons else decision.reasons[0].kind.value


def test_roles(room: Room) -> None:
    assert room.state.role("owner") is Role.OWNER
    assert room.state.role("mod") is Role.MODERATOR
    assert room.state.role("viewer") is Role.VIEWER
    with pytest.raises(NotPermitted):
        room.add_moderator("mod", "viewer")
    with pytest.raises(InvalidTransition):
        room.add_moderator("owner", "mod")
    room.remove_moderator("owner", "mod2")
    assert room.state.role("mod2") is Role.VIEWER


def test_moderators_cannot_act_on_staff(room: Room) -> None:
    with pytest.raises(NotPermitted):
        room.ban("mod", "mod2")
    with pytest.raises(NotPermitted):
        room.timeout("mod", "owner", 60)
    with pytest.raises(NotPermitted):
        room.ban("owner", "owner")
    with pytest.raises(NotPermitted):
        room.ban("viewer", "other")
    entry = room.ban("owner", "mod2", "abuse")
    assert entry.detail == "moderator role removed"
    assert room.state.role("mod2") is Role.VIEWER


def test_timeout_expires_with_the_clock(
    engine: ModerationEngine, room: Room, clock: FakeClock
) -> None:
    room.timeout("mod", "viewer", 60, "calm down")
    decision = engine.check(MessageContext("chan", "viewer", "hi"))
    assert decision.action is Action.BLOCK
    assert decision.reasons[0].kind is ReasonKind.TIMEOUT
    assert decision.retry_after_s == pytest.approx(60)
    assert "1 min" in decision.message or "60 s" in decision.message
    clock.advance(59)
    assert say(engine, "viewer") == "timeout"
    clock.advance(1)
    assert say(engine, "viewer") == "allow"
    assert "viewer" not in room.state.timeouts
    with pytest.raises(ValidationFailed):
        room.timeout("mod", "viewer", 0)


def test_untimeout(engine: ModerationEngine, room: Room) -> None:
    room.timeout("mod", "viewer", 600)
    room.untimeout("mod", "viewer")
    assert say(engine, "viewer") == "allow"
    with pytest.raises(InvalidTransition):
        room.untimeout("mod", "viewer")


def test_ban_blocks_until_unban(engine: ModerationEngine, room: Room) -> None:
    room.ban("mod", "troll", "spam")
    assert say(engine, "troll") == "ban"
    assert room.state.bans["troll"].reason == "spam"
    with pytest.raises(InvalidTransition):
        room.ban("mod", "troll")
    room.unban("mod2", "troll", "second chance")
    assert say(engine, "troll") == "allow"
    with pytest.raises(InvalidTransition):
        room.unban("mod", "troll")


def test_slow_mode(engine: ModerationEngine, room: Room, clock: FakeClock) -> None:
    room.set_slow_mode("mod", 10)
    assert say(engine, "viewer") == "allow"
    clock.advance(4)
    decision = engine.check(MessageContext("chan", "viewer", "again"))
    assert decision.reasons[0].kind is ReasonKind.SLOW_MODE
    assert decision.retry_after_s == pytest.approx(6)
    assert say(engine, "other") == "allow"  # per user
    assert say(engine, "mod") == "allow"
    assert say(engine, "mod") == "allow"  # staff exempt
    assert say(engine, "owner") == "allow"
    assert say(engine, "owner") == "allow"
    clock.advance(6)
    assert say(engine, "viewer") == "allow"
    room.set_slow_mode("mod", 0)
    assert say(engine, "viewer") == "allow"
    with pytest.raises(ValidationFailed):
        room.set_slow_mode("mod", -1)


def test_blocked_messages_do_not_start_the_slow_mode_wait(
    engine: ModerationEngine, room: Room
) -> None:
    room.set_slow_mode("mod", 10)
    room.ban_word("mod", "bad")
    assert say(engine, "viewer", "bad") == "banned_word"
    assert say(engine, "viewer", "fine") == "allow"


def test_followers_only(engine: ModerationEngine, room: Room, clock: FakeClock) -> None:
    room.set_followers_only("mod", 600)
    assert say(engine, "viewer") == "followers_only"
    decision = engine.check(MessageContext("chan", "viewer", "hi", follows_since=clock.now - 60))
    assert decision.reasons[0].kind is ReasonKind.FOLLOWERS_ONLY
    assert decision.retry_after_s == pytest.approx(540)
    assert "followers" in decision.message
    assert say(engine, "viewer", follows_since=clock.now - 600) == "allow"
    assert say(engine, "mod") == "allow"  # staff exempt
    room.set_followers_only("mod", 0)
    assert say(engine, "new", follows_since=clock.now) == "allow"
    room.set_followers_only("mod", None)
    assert say(engine, "stranger") == "allow"


def test_rate_limit(clock: FakeClock) -> None:
    engine = ModerationEngine(clock=clock, rate_messages=3, rate_window_s=3)
    engine.open_channel("chan", "owner")
    assert [say(engine, "u") for _ in range(4)] == ["allow", "allow", "allow", "rate"]
    clock.advance(1)
    assert say(engine, "u") == "allow"
    assert say(engine, "owner") == "allow"


def test_message_deletion(room: Room) -> None:
    assert room.delete_message("viewer", "m1", "viewer").action is AuditAction.DELETE_MESSAGE
    entry = room.delete_message("mod", "m2", "viewer", "slur")
    assert (entry.actor, entry.target, entry.detail) == ("mod", "m2", "author viewer")
    with pytest.raises(NotPermitted):
        room.delete_message("viewer", "m3", "someone-else")
    with pytest.raises(NotPermitted):
        room.delete_message("mod", "m4", "owner")


def test_every_action_is_audited(room: Room, clock: FakeClock) -> None:
    before = len(room.state.audit)
    actions: list[Callable[[], AuditEntry]] = [
        lambda: room.timeout("mod", "v", 60, "r"),
        lambda: room.untimeout("mod", "v"),
        lambda: room.ban("mod", "v", "r"),
        lambda: room.appeal("v", "sorry"),
        lambda: room.decide_appeal("mod2", "v", lift=False, reason="no"),
        lambda: room.unban("owner", "v"),
        lambda: room.delete_message("mod", "m1", "v"),
        lambda: room.review("mod", "m2", approve=True),
        lambda: room.review("mod", "m3", approve=False),
        lambda: room.set_slow_mode("mod", 5),
        lambda: room.set_followers_only("mod", 60),
        lambda: room.ban_word("mod", "bad"),
        lambda: room.ban_word("mod", "bad", remove=True),
        lambda: room.allow_word("mod", "class"),
        lambda: room.allow_word("mod", "class", remove=True),
        lambda: room.add_regex("mod", "spam", r"free\s+stuff"),
        lambda: room.remove_regex("mod", "spam"),
        lambda: room.set_link_policy("mod", "hold"),
        lambda: room.allow_domain("mod", "twitch.tv"),
        lambda: room.allow_domain("mod", "twitch.tv", remove=True),
        lambda: room.set_thresholds("mod", hold=0.5, block=0.9),
        lambda: room.add_moderator("owner", "v"),
        lambda: room.remove_moderator("owner", "v"),
    ]
    entries = []
    for act in actions:
        clock.advance(1)
        entries.append(act())
    assert room.state.audit[before:] == entries
    assert {e.action for e in entries} | {AuditAction.ADD_MODERATOR} == set(AuditAction) - {
        AuditAction.APPEAL_LIFTED
    }
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e.channel_id == "chan" for e in entries)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert entries[0].reason == "r" and entries[0].target == "v" and entries[0].actor == "mod"


def test_filter_edits_need_staff(room: Room) -> None:
    with pytest.raises(NotPermitted):
        room.ban_word("viewer", "bad")
    with pytest.raises(NotPermitted):
        room.set_slow_mode("viewer", 5)
    with pytest.raises(ValidationFailed):
        room.add_regex("mod", "evil", r"(a+)+")
    with pytest.raises(ValidationFailed):
        room.set_link_policy("mod", "sometimes")
    assert room.state.regexes == {}


# --- appeals -----------------------------------------------------------------------------


def test_appeal_lifted_restores_posting(engine: ModerationEngine, room: Room) -> None:
    room.ban("mod", "troll", "spam")
    filed = room.appeal("troll", "it was a joke")
    assert filed.action is AuditAction.APPEAL_FILED and filed.actor == "troll"
    ban = room.state.bans["troll"]
    assert ban.appeal is not None and ban.appeal.status is AppealStatus.PENDING
    assert room.pending_appeals() == [ban]
    decided = room.decide_appeal("mod2", "troll", lift=True, reason="fair")
    assert decided.action is AuditAction.APPEAL_LIFTED
    assert (ban.appeal.status, ban.appeal.decided_by) == (AppealStatus.LIFTED, "mod2")
    assert "troll" not in room.state.bans
    assert say(engine, "troll") == "allow"


def test_appeal_upheld_keeps_the_ban(engine: ModerationEngine, room: Room) -> None:
    room.ban("mod", "troll")
    room.appeal("troll", "please")
    entry = room.decide_appeal("owner", "troll", lift=False, reason="no")
    assert entry.action is AuditAction.APPEAL_UPHELD
    assert room.state.bans["troll"].appeal.status is AppealStatus.UPHELD  # type: ignore[union-attr]
    assert say(engine, "troll") == "ban"
    with pytest.raises(InvalidTransition):
        room.appeal("troll", "again")  # once per ban, even after a decision
    with pytest.raises(InvalidTransition):
        room.decide_appeal("owner", "troll", lift=True)


def test_appeal_twice_is_an_error(room: Room) -> None:
    room.ban("mod", "troll")
    room.appeal("troll", "one")
    with pytest.raises(InvalidTransition):
        room.appeal("troll", "two")


def test_a_new_ban_can_be_appealed_again(room: Room) -> None:
    room.ban("mod", "troll")
    room.appeal("troll", "one")
    room.decide_appeal("mod2", "troll", lift=True)
    room.ban("mod", "troll")
    room.appeal("troll", "two")


def test_only_banned_users_appeal(room: Room) -> None:
    with pytest.raises(InvalidTransition):
        room.appeal("viewer", "why")


def test_non_moderator_cannot_decide(room: Room) -> None:
    room.ban("mod", "troll")
    room.appeal("troll", "pls")
    with pytest.raises(NotPermitted):
        room.decide_appeal("viewer", "troll", lift=True)
    with pytest.raises(NotPermitted):
        room.decide_appeal("troll", "troll", lift=True)
    with pytest.raises(NotPermitted):
        room.decide_appeal("mod", "troll", lift=True)  # the banning moderator
    assert room.state.bans["troll"].appeal.status is AppealStatus.PENDING  # type: ignore[union-attr]
    room.decide_appeal("owner", "troll", lift=False)


def test_deciding_without_an_appeal_is_an_error(room: Room) -> None:
    room.ban("mod", "troll")
    with pytest.raises(InvalidTransition):
        room.decide_appeal("mod2", "troll", lift=True)
