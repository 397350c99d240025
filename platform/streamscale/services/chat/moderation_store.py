"""Moderation for the chat worker: the pure engine fed with state read from storage.

Channel state (roles, bans, timeouts, room settings, banned words) is read from the store
and installed in the engine at most every `refresh_s` per channel, so a ban or a new
banned word made through the API applies within that time on every worker. The engine's
ephemeral counters (slow mode, per-user rate) survive a refresh. A channel is the
streamer's user id: moderation outlives one stream.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import trio

from ...backends.storage import Store
from .moderation import (
    Action,
    Ban,
    ChannelState,
    InvalidRule,
    LinkPolicy,
    LinkRules,
    MessageContext,
    ModerationEngine,
    ReasonKind,
    RegexFilter,
    Timeout,
    ToxicityModel,
    WordList,
)
from .pipeline import Verdict

log = logging.getLogger(__name__)

_LINK_POLICIES = {"allow": LinkPolicy.ALLOW_ALL, "hold": LinkPolicy.HOLD,
                  "block": LinkPolicy.BLOCK_ALL}
# What a blocked sender is told, as a stable code (HTTP and WebSocket errors use it).
_CODES = {
    ReasonKind.BAN: "banned", ReasonKind.TIMEOUT: "timed_out",
    ReasonKind.FOLLOWERS_ONLY: "followers_only", ReasonKind.SLOW_MODE: "slow_mode",
    ReasonKind.RATE: "rate_limited",
}


class StoreModerator:
    def __init__(self, store: Store, *, toxicity: ToxicityModel | None = None,
                 refresh_s: float = 2.0) -> None:
        self._store = store
        self._engine = ModerationEngine(clock=time.time, toxicity=toxicity)
        self._refresh_s = refresh_s
        self._loaded_at: dict[str, float] = {}
        self._channel_of: dict[str, str] = {}  # stream id -> channel (owner) id
        self._user_seen: dict[str, float] = {}  # user id -> when last found to exist

    async def _channel(self, room_id: str) -> str | None:
        channel = self._channel_of.get(room_id)
        if channel is None:
            stream = await self._store.get_stream(room_id)
            if stream is None:
                return None
            channel = self._channel_of[room_id] = stream.user_id
        return channel

    async def _refresh(self, channel_id: str) -> None:
        now = trio.current_time()
        if now - self._loaded_at.get(channel_id, -1e18) < self._refresh_s:
            return
        state = await load_channel_state(self._store, channel_id)
        old = self._engine.rooms.get(channel_id)
        if old is not None:
            state.recent_post_at = old.state.recent_post_at
            state.recent_rate = old.state.recent_rate
        self._engine.load_channel(state)
        self._engine.prune()  # forget idle slow-mode and rate entries (bounded memory)
        global_words = await self._store.list_banned_words(None)
        self._engine.global_words = WordList.of(w.word for w in global_words)
        self._loaded_at[channel_id] = now

    async def _exists(self, user_id: str) -> bool:
        """Whether the author's account still exists, re-read at most every `refresh_s`:
        a connection joined before its account was deleted is closed on its next post."""
        now = trio.current_time()
        if now - self._user_seen.get(user_id, -1e18) < self._refresh_s:
            return True
        if await self._store.get_user(user_id) is None:
            self._user_seen.pop(user_id, None)
            return False
        if len(self._user_seen) >= 100_000:  # bounded memory: start over
            self._user_seen.clear()
        self._user_seen[user_id] = now
        return True

    async def check(self, *, room_id: str, user_id: str, text: str) -> Verdict:
        channel = await self._channel(room_id)
        if channel is None:
            return Verdict(action="block", code="no_such_stream", message="no such stream")
        if not await self._exists(user_id):
            return Verdict(action="block", code="account_deleted",
                           message="this account has been deleted", close=True)
        await self._refresh(channel)
        follow = await self._store.get_follow(channel, user_id)
        decision = self._engine.check(MessageContext(
            channel_id=channel, user_id=user_id, text=text,
            follows_since=follow.created_at.timestamp() if follow else None,
        ))
        details: dict[str, Any] = {}
        if decision.reasons:
            details["reasons"] = [
                {"kind": str(r.kind), "rule": r.rule, "detail": r.detail}
                for r in decision.reasons
            ]
        if decision.toxicity is not None:
            details["toxicity"] = round(decision.toxicity, 4)
        if decision.action is Action.ALLOW:
            return Verdict(action="allow", details=details)
        if decision.action is Action.HOLD:
            return Verdict(action="hold", message=decision.message, details=details)
        kind = decision.reasons[0].kind if decision.reasons else None
        return Verdict(
            action="block", code=_CODES.get(kind, "blocked") if kind else "blocked",
            message=decision.message, details=details, close=kind is ReasonKind.BAN,
        )


async def load_channel_state(store: Store, channel_id: str) -> ChannelState:
    """The engine's view of one channel, from the moderation tables."""
    owner = channel_id
    moderators = set()
    for role in await store.list_channel_roles(channel_id):
        if role.role == "moderator":
            moderators.add(role.user_id)
    settings = await store.get_room_settings(channel_id)
    regexes: dict[str, RegexFilter] = {}
    for i, pattern in enumerate(settings.regex_filters):
        try:
            regexes[f"filter{i + 1}"] = RegexFilter(f"filter{i + 1}", pattern)
        except InvalidRule as exc:  # stored before a stricter check: skip, say so
            log.warning("channel %s: regex filter %r skipped: %s", channel_id, pattern, exc)
    words = [w.word for w in await store.list_banned_words(channel_id)
             if w.channel_id == channel_id]
    now = time.time()
    bans: dict[str, Ban] = {}
    page = await store.list_bans(channel_id, active_only=True, limit=1000)
    for i, ban in enumerate(page.items):
        bans[ban.user_id] = Ban(ban_id=i + 1, user_id=ban.user_id, by=ban.banned_by,
                                reason=ban.reason, at=ban.created_at.timestamp())
    timeouts = {
        t.user_id: Timeout(user_id=t.user_id, until=t.until.timestamp(), by=t.created_by,
                           reason=t.reason, at=t.created_at.timestamp())
        for t in await store.list_timeouts(channel_id, now=datetime.fromtimestamp(now, UTC))
    }
    return ChannelState(
        channel_id=channel_id, owner_id=owner, moderators=moderators,
        slow_mode_s=float(settings.slow_mode_s),
        followers_only_s=(None if settings.followers_only_min_age_s is None
                          else float(settings.followers_only_min_age_s)),
        words=WordList.of(words), regexes=regexes,
        links=LinkRules(policy=_LINK_POLICIES.get(settings.link_policy, LinkPolicy.ALLOW_ALL)),
        timeouts=timeouts, bans=bans,
    )

