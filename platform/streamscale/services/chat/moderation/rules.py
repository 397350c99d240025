"""Room rules as state transitions: roles, timeouts, bans, appeals, modes, audit log.

All state sits in plain dataclasses (:class:`ChannelState`) that the storage layer
persists; :class:`Room` applies transitions to one channel's state with an injected
clock, so every outcome is deterministic given the clock. Every moderator action (and
every appeal step) appends an :class:`AuditEntry` and returns it, for the caller to
persist: the audit log is how wrong calls are found and appealed (seed failure mode 6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from streamscale.services.errors import ConflictError, Forbidden, ValidationFailed

from .filters import RegexFilter, WordList
from .links import LinkPolicy, LinkRules
from .toxicity import ToxicityThresholds

__all__ = [
    "Appeal",
    "AppealStatus",
    "AuditAction",
    "AuditEntry",
    "Ban",
    "ChannelState",
    "InvalidTransition",
    "NotPermitted",
    "Role",
    "Room",
    "Timeout",
]

AUDIT_IN_MEMORY = 1000
"""Entries kept on the state for the moderator view; older ones live in storage only."""
MAX_TIMEOUT_S = 14 * 24 * 3600.0
MAX_SLOW_MODE_S = 3600.0
MAX_REASON_CHARS = 500


class NotPermitted(Forbidden):
    code = "moderation_forbidden"


class InvalidTransition(ConflictError):
    code = "moderation_conflict"


class Role(StrEnum):
    OWNER = "owner"
    MODERATOR = "moderator"
    VIEWER = "viewer"


class AuditAction(StrEnum):
    ADD_MODERATOR = "add_moderator"
    REMOVE_MODERATOR = "remove_moderator"
    TIMEOUT = "timeout"
    UNTIMEOUT = "untimeout"
    BAN = "ban"
    UNBAN = "unban"
    DELETE_MESSAGE = "delete_message"
    REVIEW_APPROVE = "review_approve"
    REVIEW_REJECT = "review_reject"
    SLOW_MODE = "slow_mode"
    FOLLOWERS_ONLY = "followers_only"
    BANNED_WORD_ADD = "banned_word_add"
    BANNED_WORD_REMOVE = "banned_word_remove"
    ALLOWED_WORD_ADD = "allowed_word_add"
    ALLOWED_WORD_REMOVE = "allowed_word_remove"
    REGEX_ADD = "regex_add"
    REGEX_REMOVE = "regex_remove"
    LINK_POLICY = "link_policy"
    LINK_DOMAIN_ADD = "link_domain_add"
    LINK_DOMAIN_REMOVE = "link_domain_remove"
    TOXICITY_THRESHOLDS = "toxicity_thresholds"
    APPEAL_FILED = "appeal_filed"
    APPEAL_UPHELD = "appeal_upheld"
    APPEAL_LIFTED = "appeal_lifted"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to whom, why, and when (epoch seconds). ``seq`` orders a channel's log."""

    seq: int
    channel_id: str
    at: float
    actor: str
    action: AuditAction
    target: str
    reason: str = ""
    detail: str = ""


@dataclass(slots=True)
class Timeout:
    user_id: str
    until: float
    by: str
    reason: str
    at: float


class AppealStatus(StrEnum):
    PENDING = "pending"
    UPHELD = "upheld"
    LIFTED = "lifted"


@dataclass(slots=True)
class Appeal:
    text: str
    at: float
    status: AppealStatus = AppealStatus.PENDING
    decided_by: str | None = None
    decided_at: float | None = None
    decision_reason: str = ""


@dataclass(slots=True)
class Ban:
    """A ban lasts until lifted (by unban or by an appeal); one appeal per ban."""

    ban_id: int
    user_id: str
    by: str
    reason: str
    at: float
    appeal: Appeal | None = None


@dataclass(slots=True)
class ChannelState:
    """One channel's moderation state. Everything but the two ``recent_*`` maps persists."""

    channel_id: str
    owner_id: str
    moderators: set[str] = field(default_factory=set)
    slow_mode_s: float = 0.0
    followers_only_s: float | None = None
    """None: anyone may post; 0: any follower; N: followers of at least N seconds."""
    words: WordList = field(default_factory=WordList)
    regexes: dict[str, RegexFilter] = field(default_factory=dict)
    links: LinkRules = field(default_factory=LinkRules)
    thresholds: ToxicityThresholds = field(default_factory=ToxicityThresholds)
    timeouts: dict[str, Timeout] = field(default_factory=dict)
    bans: dict[str, Ban] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    next_seq: int = 1
    # Ephemeral (losing them on restart only forgives a few seconds of slow mode/rate):
    recent_post_at: dict[str, float] = field(default_factory=dict)
    recent_rate: dict[str, tuple[float, float]] = field(default_factory=dict)

    def role(self, user_id: str) -> Role:
        if user_id == self.owner_id:
            return Role.OWNER
        return Role.MODERATOR if user_id in self.moderators else Role.VIEWER


def _reason(text: str) -> str:
    return text.strip()[:MAX_REASON_CHARS]


class Room:
    """Transitions on one :class:`ChannelState`, timed by ``clock`` (epoch seconds)."""

    def __init__(self, state: ChannelState, clock: Callable[[], float]) -> None:
        self.state = state
        self.clock = clock

    # --- helpers --------------------------------------------------------------------

    def _audit(
        self, actor: str, action: AuditAction, target: str, reason: str = "", detail: str = ""
    ) -> AuditEntry:
        s = self.state
        entry = AuditEntry(
            s.next_seq, s.channel_id, self.clock(), actor, action, target, _reason(reason), detail
        )
        s.next_seq += 1
        s.audit.append(entry)
        if len(s.audit) > AUDIT_IN_MEMORY:
            del s.audit[: len(s.audit) - AUDIT_IN_MEMORY]
        return entry

    def _staff(self, actor: str) -> Role:
        role = self.state.role(actor)
        if role is Role.VIEWER:
            raise NotPermitted("only the channel owner or a moderator may do that")
        return role

    def _may_target(self, actor: str, target: str) -> None:
        """Moderators act on viewers; the owner on anyone but themself."""
        role = self._staff(actor)
        target_role = self.state.role(target)
        if target_role is Role.OWNER or actor == target:
            raise NotPermitted("the channel owner and yourself cannot be targeted")
        if target_role is Role.MODERATOR and role is not Role.OWNER:
            raise NotPermitted("only the channel owner may act on a moderator")

    # --- roles ----------------------------------------------------------------------

    def add_moderator(self, actor: str, user_id: str, reason: str = "") -> AuditEntry:
        if self.state.role(actor) is not Role.OWNER:
            raise NotPermitted("only the channel owner may appoint moderators")
        if self.state.role(user_id) is not Role.VIEWER:
            raise InvalidTransition("already the owner or a moderator")
        self.state.moderators.add(user_id)
        return self._audit(actor, AuditAction.ADD_MODERATOR, user_id, reason)

    def remove_moderator(self, actor: str, user_id: str, reason: str = "") -> AuditEntry:
        if self.state.role(actor) is not Role.OWNER and actor != user_id:
            raise NotPermitted("only the channel owner may remove a moderator")
        if user_id not in self.state.moderators:
            raise InvalidTransition("not a moderator")
        self.state.moderators.discard(user_id)
        return self._audit(actor, AuditAction.REMOVE_MODERATOR, user_id, reason)

    # --- timeouts and bans ------------------------------------------------------------

    def timeout(self, actor: str, user_id: str, duration_s: float, reason: str = "") -> AuditEntry:
        self._may_target(actor, user_id)
        if not 1.0 <= duration_s <= MAX_TIMEOUT_S:
            raise ValidationFailed(f"a timeout lasts 1 s to {MAX_TIMEOUT_S:.0f} s")
        now = self.clock()
        self.state.timeouts[user_id] = Timeout(
            user_id, now + duration_s, actor, _reason(reason), now
        )
        return self._audit(actor, AuditAction.TIMEOUT, user_id, reason, f"{duration_s:g}s")

    def untimeout(self, actor: str, user_id: str, reason: str = "") -> AuditEntry:
        self._staff(actor)
        if self.state.timeouts.pop(user_id, None) is None:
            raise InvalidTransition("that user is not timed out")
        return self._audit(actor, AuditAction.UNTIMEOUT, user_id, reason)

    def ban(self, actor: str, user_id: str, reason: str = "") -> AuditEntry:
        self._may_target(actor, user_id)
        if user_id in self.state.bans:
            raise InvalidTransition("that user is already banned")
        demoted = user_id in self.state.moderators
        self.state.moderators.discard(user_id)
        self.state.timeouts.pop(user_id, None)
        entry = self._audit(
            actor, AuditAction.BAN, user_id, reason, "moderator role removed" if demoted else ""
        )
        self.state.bans[user_id] = Ban(entry.seq, user_id, actor, _reason(reason), entry.at)
        return entry

    def unban(self, actor: str, user_id: str, reason: str = "") -> AuditEntry:
        self._staff(actor)
        if self.state.bans.pop(user_id, None) is None:
            raise InvalidTransition("that user is not banned")
        return self._audit(actor, AuditAction.UNBAN, user_id, reason)

    # --- appeals --------------------------------------------------------------------

    def appeal(self, user_id: str, text: str) -> AuditEntry:
        """A banned user asks for the ban to be lifted: once per ban."""
        ban = self.state.bans.get(user_id)
        if ban is None:
            raise InvalidTransition("only a banned user can appeal")
        if ban.appeal is not None:
            raise InvalidTransition("this ban has already been appealed")
        ban.appeal = Appeal(_reason(text), self.clock())
        return self._audit(user_id, AuditAction.APPEAL_FILED, user_id, text, f"ban {ban.ban_id}")

    def decide_appeal(
        self, actor: str, user_id: str, *, lift: bool, reason: str = ""
    ) -> AuditEntry:
        """Uphold or lift. The moderator who banned may not judge it (the owner may)."""
        role = self._staff(actor)
        ban = self.state.bans.get(user_id)
        if ban is None or ban.appeal is None or ban.appeal.status is not AppealStatus.PENDING:
            raise InvalidTransition("no pending appeal for that user")
        if actor == ban.by and role is not Role.OWNER:
            raise NotPermitted("another moderator or the owner must decide this appeal")
        ban.appeal.status = AppealStatus.LIFTED if lift else AppealStatus.UPHELD
        ban.appeal.decided_by = actor
        ban.appeal.decided_at = self.clock()
        ban.appeal.decision_reason = _reason(reason)
        if lift:
            del self.state.bans[user_id]
        action = AuditAction.APPEAL_LIFTED if lift else AuditAction.APPEAL_UPHELD
        return self._audit(actor, action, user_id, reason, f"ban {ban.ban_id}")

    def pending_appeals(self) -> list[Ban]:
        return [
            b
            for b in self.state.bans.values()
            if b.appeal is not None and b.appeal.status is AppealStatus.PENDING
        ]

    # --- messages -------------------------------------------------------------------

    def delete_message(
        self, actor: str, message_id: str, author_id: str, reason: str = ""
    ) -> AuditEntry:
        """Authors may delete their own messages; staff anyone's but the owner's."""
        if actor != author_id:
            self._may_target(actor, author_id)
        return self._audit(
            actor, AuditAction.DELETE_MESSAGE, message_id, reason, f"author {author_id}"
        )

    def review(self, actor: str, message_id: str, *, approve: bool, reason: str = "") -> AuditEntry:
        """A moderator's verdict on a held message (the review queue lives in storage)."""
        self._staff(actor)
        action = AuditAction.REVIEW_APPROVE if approve else AuditAction.REVIEW_REJECT
        return self._audit(actor, action, message_id, reason)

    # --- modes and filters ------------------------------------------------------------

    def set_slow_mode(self, actor: str, interval_s: float, reason: str = "") -> AuditEntry:
        self._staff(actor)
        if not 0.0 <= interval_s <= MAX_SLOW_MODE_S:
            raise ValidationFailed(f"slow mode is 0 (off) to {MAX_SLOW_MODE_S:.0f} s")
        self.state.slow_mode_s = interval_s
        return self._audit(
            actor, AuditAction.SLOW_MODE, self.state.channel_id, reason, f"{interval_s:g}s"
        )

    def set_followers_only(
        self, actor: str, min_follow_s: float | None, reason: str = ""
    ) -> AuditEntry:
        self._staff(actor)
        if min_follow_s is not None and not 0.0 <= min_follow_s <= 90 * 24 * 3600.0:
            raise ValidationFailed("followers-only needs a minimum follow age of 0 to 90 days")
        self.state.followers_only_s = min_follow_s
        detail = "off" if min_follow_s is None else f"{min_follow_s:g}s"
        return self._audit(actor, AuditAction.FOLLOWERS_ONLY, self.state.channel_id, reason, detail)

    def ban_word(self, actor: str, word: str, *, remove: bool = False) -> AuditEntry:
        self._staff(actor)
        if remove:
            if not self.state.words.remove(word):
                raise InvalidTransition("that word is not on the list")
            return self._audit(actor, AuditAction.BANNED_WORD_REMOVE, word)
        return self._audit(actor, AuditAction.BANNED_WORD_ADD, self.state.words.add(word))

    def allow_word(self, actor: str, word: str, *, remove: bool = False) -> AuditEntry:
        self._staff(actor)
        if remove:
            if not self.state.words.disallow(word):
                raise InvalidTransition("that word is not on the allowlist")
            return self._audit(actor, AuditAction.ALLOWED_WORD_REMOVE, word)
        return self._audit(actor, AuditAction.ALLOWED_WORD_ADD, self.state.words.allow(word))

    def add_regex(self, actor: str, name: str, pattern: str) -> AuditEntry:
        self._staff(actor)
        if not name or len(name) > 64:
            raise ValidationFailed("a filter name is 1-64 characters")
        self.state.regexes[name] = RegexFilter(name, pattern)  # raises InvalidRule
        return self._audit(actor, AuditAction.REGEX_ADD, name, detail=pattern)

    def remove_regex(self, actor: str, name: str) -> AuditEntry:
        self._staff(actor)
        if self.state.regexes.pop(name, None) is None:
            raise InvalidTransition("no filter of that name")
        return self._audit(actor, AuditAction.REGEX_REMOVE, name)

    def set_link_policy(self, actor: str, policy: LinkPolicy | str) -> AuditEntry:
        self._staff(actor)
        try:
            self.state.links.policy = LinkPolicy(policy)
        except ValueError:
            raise ValidationFailed(
                f"link policy is one of {[p.value for p in LinkPolicy]}"
            ) from None
        return self._audit(actor, AuditAction.LINK_POLICY, self.state.channel_id, detail=policy)

    def allow_domain(self, actor: str, domain: str, *, remove: bool = False) -> AuditEntry:
        self._staff(actor)
        if remove:
            name = domain.strip().lower().removeprefix("www.")
            if name not in self.state.links.allowed_domains:
                raise InvalidTransition("that domain is not on the list")
            self.state.links.allowed_domains.discard(name)
            return self._audit(actor, AuditAction.LINK_DOMAIN_REMOVE, name)
        return self._audit(
            actor, AuditAction.LINK_DOMAIN_ADD, self.state.links.allow_domain(domain)
        )

    def set_thresholds(self, actor: str, *, hold: float, block: float) -> AuditEntry:
        self._staff(actor)
        try:
            self.state.thresholds = ToxicityThresholds(hold=hold, block=block)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        return self._audit(
            actor,
            AuditAction.TOXICITY_THRESHOLDS,
            self.state.channel_id,
            detail=f"hold {hold:g} block {block:g}",
        )
