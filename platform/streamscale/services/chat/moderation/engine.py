"""The moderation engine: one decision per chat message, no I/O.

The chat worker that owns a room calls :meth:`ModerationEngine.check` (or
:meth:`~ModerationEngine.check_many` for a batch) for every message before persisting
it. Rules run cheapest first and stop at the first block: ban, timeout, followers-only,
slow mode, rate, then the content filters (banned words, regex, links) and last the
toxicity model. A hold does not stop the run: a later rule may still block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .filters import WordList
from .normalise import normalise
from .rules import ChannelState, Role, Room
from .toxicity import ToxicityModel

__all__ = ["Action", "Decision", "MessageContext", "ModerationEngine", "Reason", "ReasonKind"]


class Action(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    HOLD = "hold"
    """Not shown to the room until a moderator approves it from the review queue."""


class ReasonKind(StrEnum):
    BANNED_WORD = "banned_word"
    REGEX = "regex"
    LINK = "link"
    TOXICITY = "toxicity"
    SLOW_MODE = "slow_mode"
    FOLLOWERS_ONLY = "followers_only"
    TIMEOUT = "timeout"
    BAN = "ban"
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class Reason:
    """Which rule fired. ``rule``: the list ("global"/"channel"), filter name, policy or
    role; ``detail``: the matched entry, domain or score. For moderators, not senders."""

    kind: ReasonKind
    rule: str = ""
    detail: str = ""


_USER_MESSAGES = {
    ReasonKind.BAN: "You are banned from this chat.",
    ReasonKind.TIMEOUT: "You are timed out; you can chat again in {wait}.",
    ReasonKind.FOLLOWERS_ONLY: "This chat is for followers only{follow}.",
    ReasonKind.SLOW_MODE: "Slow mode is on; you can send another message in {wait}.",
    ReasonKind.RATE: "You are sending messages too fast; try again in {wait}.",
    ReasonKind.BANNED_WORD: "Your message contains a word that is not allowed here.",
    ReasonKind.REGEX: "Your message matches a filter set by this channel's moderators.",
    ReasonKind.LINK: "Links to that site are not allowed in this chat.",
    ReasonKind.TOXICITY: "Your message looks abusive and was not sent.",
}
_HELD = "Your message is waiting for a moderator to review it."


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[Reason, ...] = ()
    message: str = ""
    """What to tell the sender; empty when allowed."""
    retry_after_s: float | None = None
    toxicity: float | None = None


ALLOW = Decision(Action.ALLOW)


@dataclass(frozen=True, slots=True)
class MessageContext:
    """One message as the worker sees it. ``follows_since``: epoch seconds the sender has
    followed the channel since, or None if they do not follow it (the caller looks it up)."""

    channel_id: str
    user_id: str
    text: str
    message_id: str = ""
    follows_since: float | None = None


def _wait(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 3600)} h"


def _blocked(reason: Reason, *, retry_after_s: float | None = None, follow: str = "") -> Decision:
    wait = _wait(retry_after_s) if retry_after_s is not None else ""
    text = _USER_MESSAGES[reason.kind].format(wait=wait, follow=follow)
    return Decision(Action.BLOCK, (reason,), text, retry_after_s)


@dataclass(slots=True)
class ModerationEngine:
    """Decisions for the channels of one chat worker (one task owns it: not thread-safe).

    ``toxicity``: None runs without the model. ``rate_messages`` per ``rate_window_s``
    per user and channel is an optional token bucket, off by default: the platform's
    per-user limit is ``chat.user_rate_per_10s``, enforced once per process before the bus
    (``service.PostLimits``). Staff are exempt from it and from slow mode, followers-only
    and the link policy, but not from the word, regex or toxicity filters.
    """

    clock: Callable[[], float]
    toxicity: ToxicityModel | None = None
    global_words: WordList = field(default_factory=WordList)
    rate_messages: int | None = None
    rate_window_s: float = 30.0
    rooms: dict[str, Room] = field(default_factory=dict)

    # --- channels -----------------------------------------------------------------------

    def open_channel(self, channel_id: str, owner_id: str) -> Room:
        """The room for a channel, created with default rules the first time."""
        room = self.rooms.get(channel_id)
        if room is None:
            room = self.load_channel(ChannelState(channel_id, owner_id))
        return room

    def load_channel(self, state: ChannelState) -> Room:
        """Install state read back from storage (replacing any room of that channel)."""
        room = Room(state, self.clock)
        self.rooms[state.channel_id] = room
        return room

    def room(self, channel_id: str) -> Room:
        return self.rooms[channel_id]

    def prune(self) -> int:
        """Forget slow-mode and rate entries that no longer matter; call every minute or so."""
        now = self.clock()
        dropped = 0
        for room in self.rooms.values():
            s = room.state
            horizon = max(s.slow_mode_s, self.rate_window_s)
            for user in [u for u, at in s.recent_post_at.items() if now - at > horizon]:
                del s.recent_post_at[user]
                dropped += 1
            for user in [
                u for u, (_, at) in s.recent_rate.items() if now - at > self.rate_window_s
            ]:
                del s.recent_rate[user]
                dropped += 1
            for user in [u for u, t in s.timeouts.items() if t.until <= now]:
                del s.timeouts[user]
        return dropped

    # --- decisions ----------------------------------------------------------------------

    def check(self, ctx: MessageContext) -> Decision:
        """Decide one message; allowed and held messages count toward slow mode."""
        return self.check_many([ctx])[0]

    def check_many(self, batch: Sequence[MessageContext]) -> list[Decision]:
        """Decide a batch in order, scoring every survivor with one model call."""
        decisions: list[Decision | None] = []
        pending: list[tuple[int, Decision, str]] = []
        for i, ctx in enumerate(batch):
            decision, model_text = self._rules(ctx)
            decisions.append(decision if model_text is None else None)
            if model_text is not None:
                pending.append((i, decision, model_text))
        if pending and self.toxicity is not None:
            scores = self.toxicity.scores([text for _, _, text in pending])
            for (i, decision, _), score in zip(pending, scores, strict=True):
                decisions[i] = self._score(batch[i], decision, score)
        else:
            for i, decision, _ in pending:
                decisions[i] = decision
        out: list[Decision] = []
        for ctx, final in zip(batch, decisions, strict=True):
            assert final is not None
            if final.action is not Action.BLOCK:
                self.rooms[ctx.channel_id].state.recent_post_at[ctx.user_id] = self.clock()
            out.append(final)
        return out

    def _rules(self, ctx: MessageContext) -> tuple[Decision, str | None]:
        """Every rule but the model; the text to score if the model should still run."""
        room = self.rooms.get(ctx.channel_id)
        if room is None:
            raise KeyError(f"channel {ctx.channel_id!r} is not open on this engine")
        gate = self._gate(room.state, ctx)
        if gate is not None:
            return gate, None
        staff = room.state.role(ctx.user_id) is not Role.VIEWER
        norm = normalise(ctx.text)
        s = room.state
        for rule, words in (("global", self.global_words), ("channel", s.words)):
            hit = words.match(norm)
            if hit is not None:
                return _blocked(Reason(ReasonKind.BANNED_WORD, rule, hit)), None
        for name, regex in s.regexes.items():
            if regex.matches(ctx.text, norm.folded):
                return _blocked(Reason(ReasonKind.REGEX, name, regex.pattern)), None
        decision = ALLOW
        if not staff:
            verdict = s.links.verdict(norm.folded)
            if verdict is not None:
                reason = Reason(ReasonKind.LINK, str(s.links.policy), verdict[1])
                if verdict[0] == "block":
                    return _blocked(reason), None
                decision = Decision(Action.HOLD, (reason,), _HELD)
        if self.toxicity is None:
            return decision, None
        # The model scores the text as written (folded: case, width, accents, look-alikes).
        # Leetspeak is read back for the word lists only: digits beside letters are mostly
        # ids, scores and timestamps ("0000046297.455~" read as "...ass~" scored 0.992).
        return decision, norm.folded

    def _score(self, ctx: MessageContext, decision: Decision, score: float) -> Decision:
        thresholds = self.rooms[ctx.channel_id].state.thresholds
        verdict = thresholds.verdict(score)
        reason = Reason(ReasonKind.TOXICITY, "model", f"{score:.3f}")
        if verdict == "block":
            return Decision(
                Action.BLOCK, (reason,), _USER_MESSAGES[ReasonKind.TOXICITY], toxicity=score
            )
        if verdict == "hold":
            return Decision(Action.HOLD, (*decision.reasons, reason), _HELD, toxicity=score)
        return Decision(decision.action, decision.reasons, decision.message, toxicity=score)

    def _gate(self, s: ChannelState, ctx: MessageContext) -> Decision | None:
        """Who may post right now: ban, timeout, followers-only, slow mode, rate."""
        now = self.clock()
        user = ctx.user_id
        ban = s.bans.get(user)
        if ban is not None:
            return _blocked(Reason(ReasonKind.BAN, ban.by, ban.reason))
        timeout = s.timeouts.get(user)
        if timeout is not None:
            if timeout.until > now:
                return _blocked(
                    Reason(ReasonKind.TIMEOUT, timeout.by, timeout.reason),
                    retry_after_s=timeout.until - now,
                )
            del s.timeouts[user]
        if s.role(user) is not Role.VIEWER:
            return None
        if s.followers_only_s is not None:
            since = ctx.follows_since
            if since is None or now - since < s.followers_only_s:
                need = (
                    f" (following for at least {_wait(s.followers_only_s)})"
                    if s.followers_only_s
                    else ""
                )
                wait = None if since is None else since + s.followers_only_s - now
                return _blocked(
                    Reason(ReasonKind.FOLLOWERS_ONLY, detail=f"{s.followers_only_s:g}s"),
                    retry_after_s=wait,
                    follow=need,
                )
        if s.slow_mode_s > 0:
            last = s.recent_post_at.get(user)
            if last is not None and now - last < s.slow_mode_s:
                return _blocked(
                    Reason(ReasonKind.SLOW_MODE, detail=f"{s.slow_mode_s:g}s"),
                    retry_after_s=last + s.slow_mode_s - now,
                )
        return self._take_token(s, user, now)

    def _take_token(self, s: ChannelState, user: str, now: float) -> Decision | None:
        """Token bucket: ``rate_messages`` burst, refilled over ``rate_window_s``."""
        if self.rate_messages is None:
            return None
        capacity = float(self.rate_messages)
        refill_per_s = capacity / self.rate_window_s
        tokens, at = s.recent_rate.get(user, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - at) * refill_per_s)
        if tokens < 1.0:
            s.recent_rate[user] = (tokens, now)
            return _blocked(
                Reason(ReasonKind.RATE, detail=f"{self.rate_messages}/{self.rate_window_s:g}s"),
                retry_after_s=(1.0 - tokens) / refill_per_s,
            )
        s.recent_rate[user] = (tokens - 1.0, now)
        return None
