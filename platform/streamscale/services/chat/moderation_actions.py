"""Moderator actions: the engine's rule, then the stored change with its audit entry, then chat.

Each action loads the channel's state from storage into the pure engine (`rules.Room`), so
permissions and limits live in one place; applies the transition there, which yields the
audit entry; and writes the change together with that entry in one transaction (the
store's compare-and-set settles races: the loser gets 404/409 and writes no entry).

How it reaches chat: workers re-read a channel's state (roles, bans, timeouts, settings,
words) within `chat.moderation_refresh_s`, so those need nothing more. What viewers must
see at once goes out on the room topic `chat.room.<stream_id>`: {"type": "deleted",
"message_id"} for a deleted message, {"type": "message", "message"} for an approved one,
and, for a ban, {"type": "kick", "user_id"} on the topic of each of the channel's open
(created or live) streams, whose gateways close that user's connections in the room.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from ...backends.storage import (
    Appeal,
    AuditEntry,
    Ban,
    BannedWord,
    ChannelRole,
    ChatMessage,
    ChatTimeout,
    Conflict,
    NotFound,
    Page,
    RoomSettings,
    Store,
)
from ..clock import new_id, utcnow
from ..errors import ConflictError, NotFoundError, ValidationFailed
from . import moderation as engine
from .moderation import InvalidRule, LinkPolicy, NotPermitted, Role, Room, WordList, compile_safe
from .moderation_store import load_channel_state
from .pipeline import message_body

log = logging.getLogger(__name__)

T = TypeVar("T")
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Broadcast an event on a room's topic (`ChatPoster.publish`)."""

_LINK_POLICIES = {"allow": LinkPolicy.ALLOW_ALL, "hold": LinkPolicy.HOLD,
                  "block": LinkPolicy.BLOCK_ALL}
SCAN_PAGES = 10
"""Store pages a filtered listing reads before answering with what it found (and a cursor)."""


def _record(entry: engine.AuditEntry, *, user: str | None = None, message: str | None = None,
            details: dict[str, Any] | None = None) -> AuditEntry:
    """The engine's audit entry as a storage row (details replace the engine's free text)."""
    if details is None and entry.detail:
        details = {"detail": entry.detail}
    return AuditEntry(
        id=new_id(), channel_id=entry.channel_id, actor_id=entry.actor,
        action=str(entry.action), created_at=utcnow(), target_user_id=user,
        target_message_id=message, reason=entry.reason or None, details=details or None,
    )


def _not_found(what: str, code: str) -> NotFoundError:
    return NotFoundError(what, code=code)


async def scan(fetch: Callable[[str | None], Awaitable[Page[T]]], keep: Callable[[T], bool],
               cursor: str | None) -> Page[T]:
    """Filter a paginated listing: whole store pages, so the returned cursor skips nothing.

    Stops at the first page with a match, or after SCAN_PAGES pages (then the answer may be
    empty with a cursor to carry on from)."""
    items: list[T] = []
    for _ in range(SCAN_PAGES):
        page = await fetch(cursor)
        items.extend(item for item in page.items if keep(item))
        cursor = page.next_cursor
        if items or cursor is None:
            break
    return Page(items=items, next_cursor=cursor)


class Moderation:
    """Every moderator action of the API, with its permission check and audit entry."""

    def __init__(self, store: Store, publish: Publish | None = None) -> None:
        self._store = store
        self._publish = publish

    # -- channel state and permissions --------------------------------------------------

    async def room(self, channel_id: str) -> Room:
        """The engine's view of the channel (404 if no such user)."""
        if await self._store.get_user(channel_id) is None:
            raise _not_found("no such channel", "channel_not_found")
        return Room(await load_channel_state(self._store, channel_id), time.time)

    async def staff_room(self, channel_id: str, actor: str) -> Room:
        room = await self.room(channel_id)
        if room.state.role(actor) is Role.VIEWER:
            raise NotPermitted("only the channel owner or a moderator may do that")
        return room

    async def _user(self, user_id: str) -> None:
        if await self._store.get_user(user_id) is None:
            raise _not_found("no such user", "user_not_found")

    async def _tell(self, room_id: str, event: dict[str, Any]) -> None:
        if self._publish is None:
            return
        try:
            await self._publish(room_id, event)
        except Exception:  # the change stands; workers apply it on their next refresh
            log.exception("could not broadcast %s to room %s", event.get("type"), room_id)

    async def _tell_channel(self, channel_id: str, event: dict[str, Any]) -> None:
        """Tell the rooms of the channel's open (created or live) streams."""
        for status in ("live", "created"):
            page = await self._store.list_streams(user_id=channel_id, status=status, limit=50)
            for stream in page.items:
                await self._tell(stream.id, event)

    async def _kick(self, channel_id: str, user_id: str) -> None:
        await self._tell_channel(channel_id, {"type": "kick", "user_id": user_id})

    # -- roles --------------------------------------------------------------------------

    async def appoint(self, actor: str, channel_id: str, user_id: str) -> ChannelRole:
        """Make a moderator (owner only; idempotent: no entry if already one)."""
        room = await self.room(channel_id)
        if room.state.role(actor) is not Role.OWNER:
            raise NotPermitted("only the channel owner may appoint moderators")
        if user_id not in room.state.moderators:
            await self._user(user_id)
            entry = room.add_moderator(actor, user_id)
            try:
                await self._store.set_channel_role(channel_id, user_id, "moderator",
                                                   at=utcnow(), audit=_record(entry, user=user_id))
            except NotFound:
                raise _not_found("no such user", "user_not_found") from None
        return await self.moderator(channel_id, user_id)

    async def moderator(self, channel_id: str, user_id: str) -> ChannelRole:
        for role in await self._store.list_channel_roles(channel_id):
            if role.user_id == user_id and role.role == "moderator":
                return role
        raise _not_found("not a moderator of this channel", "not_a_moderator")

    async def dismiss(self, actor: str, channel_id: str, user_id: str) -> None:
        """Remove a moderator: the owner, or the moderator themself (the engine's rule)."""
        room = await self.room(channel_id)
        if user_id not in room.state.moderators:
            raise _not_found("not a moderator of this channel", "not_a_moderator")
        entry = room.remove_moderator(actor, user_id)
        if not await self._store.set_channel_role(channel_id, user_id, None, at=utcnow(),
                                                  audit=_record(entry, user=user_id)):
            raise _not_found("not a moderator of this channel", "not_a_moderator")

    # -- bans and timeouts ----------------------------------------------------------------

    async def ban(self, actor: str, channel_id: str, user_id: str, reason: str) -> Ban:
        room = await self.room(channel_id)
        await self._user(user_id)
        was_moderator = user_id in room.state.moderators
        entry = room.ban(actor, user_id, reason)
        try:
            ban, created = await self._store.add_ban(Ban(
                id=new_id(), channel_id=channel_id, user_id=user_id, reason=entry.reason,
                banned_by=actor, created_at=utcnow(),
            ), audit=_record(entry, user=user_id))
        except NotFound:
            raise _not_found("no such user", "user_not_found") from None
        if not created:
            raise ConflictError("that user is already banned", code="already_banned")
        if was_moderator:  # the engine's rule: a ban ends the role (the entry says so)
            await self._store.set_channel_role(channel_id, user_id, None, at=utcnow())
        await self._kick(channel_id, user_id)
        return ban

    async def unban(self, actor: str, channel_id: str, user_id: str, reason: str) -> Ban:
        room = await self.staff_room(channel_id, actor)
        ban = await self._store.get_active_ban(channel_id, user_id)
        if ban is None or user_id not in room.state.bans:
            raise _not_found("that user is not banned", "not_banned")
        entry = room.unban(actor, user_id, reason)
        lifted = await self._store.lift_ban(ban.id, by=actor, at=utcnow(),
                                            audit=_record(entry, user=user_id))
        if lifted is None:
            raise _not_found("that user is not banned", "not_banned")
        return lifted

    async def timeout(self, actor: str, channel_id: str, user_id: str, duration_s: int,
                      reason: str) -> ChatTimeout:
        room = await self.room(channel_id)
        await self._user(user_id)
        entry = room.timeout(actor, user_id, float(duration_s), reason)
        now = utcnow()
        timeout = ChatTimeout(channel_id=channel_id, user_id=user_id, reason=entry.reason,
                              until=now + timedelta(seconds=duration_s), created_by=actor,
                              created_at=now)
        await self._store.set_timeout(timeout, audit=_record(
            entry, user=user_id, details={"duration_s": duration_s}))
        return timeout

    async def untimeout(self, actor: str, channel_id: str, user_id: str, reason: str) -> None:
        room = await self.staff_room(channel_id, actor)
        if user_id not in room.state.timeouts:
            raise _not_found("that user is not timed out", "not_timed_out")
        entry = room.untimeout(actor, user_id, reason)
        if not await self._store.clear_timeout(channel_id, user_id, now=utcnow(),
                                               audit=_record(entry, user=user_id)):
            raise _not_found("that user is not timed out", "not_timed_out")

    # -- settings and words -----------------------------------------------------------------

    async def update_settings(self, actor: str, channel_id: str,
                              changes: dict[str, Any]) -> RoomSettings:
        """Apply the given fields (one audit entry listing what changed)."""
        room = await self.staff_room(channel_id, actor)
        old = await self._store.get_room_settings(channel_id)
        if "regex_filters" in changes:
            changes = {**changes, "regex_filters": tuple(changes["regex_filters"])}
        changed = {k: v for k, v in changes.items() if getattr(old, k) != v}
        if "slow_mode_s" in changed:
            room.set_slow_mode(actor, float(changed["slow_mode_s"]))
        if "followers_only_min_age_s" in changed:
            age = changed["followers_only_min_age_s"]
            room.set_followers_only(actor, None if age is None else float(age))
        if "link_policy" in changed:
            room.set_link_policy(actor, _LINK_POLICIES[changed["link_policy"]])
        if "regex_filters" in changed:
            for i, pattern in enumerate(changed["regex_filters"]):
                try:
                    compile_safe(pattern)
                except InvalidRule as exc:
                    raise ValidationFailed(
                        f"regex_filters[{i}] {pattern!r}: {exc.message}", code=exc.code,
                        details=[{"field": f"regex_filters.{i}", "message": exc.message}],
                    ) from None
        if not changed:
            return old
        new = dataclasses.replace(old, **changed, updated_at=utcnow(), updated_by=actor)
        entry = AuditEntry(
            id=new_id(), channel_id=channel_id, actor_id=actor, action="chat_settings",
            created_at=utcnow(), details={k: list(v) if isinstance(v, tuple) else v
                                         for k, v in changed.items()},
        )
        await self._store.set_room_settings(new, audit=entry)
        await self._tell_channel(channel_id, room_settings_event(new))
        return new

    async def add_word(self, actor: str, channel_id: str, word: str) -> tuple[str, bool]:
        """Ban a word ("word" or "prefix*") in its normalised form; True if it was new."""
        room = await self.staff_room(channel_id, actor)
        stored = WordList().add(word)  # the form load_channel_state feeds WordList.of
        entry = room.ban_word(actor, stored)
        added = await self._store.add_banned_word(
            BannedWord(channel_id=channel_id, word=stored, created_by=actor,
                       created_at=utcnow()),
            audit=_record(entry, details={"word": stored}))
        return stored, added

    async def remove_word(self, actor: str, channel_id: str, word: str) -> str:
        room = await self.staff_room(channel_id, actor)
        try:
            stored = WordList().add(word)
        except InvalidRule:
            raise _not_found("that word is not on the list", "word_not_found") from None
        room.state.words.add(stored)  # the engine checks presence; the store decides
        entry = room.ban_word(actor, stored, remove=True)
        if not await self._store.remove_banned_word(
                channel_id, stored, audit=_record(entry, details={"word": stored})):
            raise _not_found("that word is not on the list", "word_not_found")
        return stored

    # -- messages --------------------------------------------------------------------------

    async def _message(self, message_id: str, keep: Callable[[ChatMessage], bool]
                       ) -> ChatMessage:
        message = await self._store.get_chat_message(message_id)
        if message is None or not keep(message):
            raise _not_found("no such message", "message_not_found")
        return message

    async def _channel_of(self, stream_id: str) -> str:
        stream = await self._store.get_stream(stream_id)
        if stream is None:
            raise _not_found("no such stream", "stream_not_found")
        return stream.user_id

    async def delete_message(self, actor: str, stream_id: str, message_id: str,
                             reason: str) -> ChatMessage:
        """Staff delete anyone's (not the owner's), authors their own (the engine's rule)."""
        room = await self.room(await self._channel_of(stream_id))
        message = await self._message(
            message_id, lambda m: m.stream_id == stream_id and m.status != "deleted")
        entry = room.delete_message(actor, message_id, message.user_id, reason)
        deleted = await self._store.set_chat_message_status(
            message_id, status="deleted", expected=("visible", "held"), by=actor,
            at=utcnow(), audit=_record(entry, user=message.user_id, message=message_id,
                                       details={"stream_id": stream_id}))
        if deleted is None:
            raise _not_found("no such message", "message_not_found")
        if message.status == "visible":
            await self._tell(stream_id, {"type": "deleted", "message_id": message_id})
        return deleted

    async def review_queue(self, actor: str, channel_id: str, *, stream_id: str | None,
                           cursor: str | None, limit: int) -> Page[ChatMessage]:
        """Held messages of the channel's streams (or of one), newest first."""
        await self.staff_room(channel_id, actor)
        if stream_id is not None:
            if await self._channel_of(stream_id) != channel_id:
                raise _not_found("no such stream in this channel", "stream_not_found")
            return await self._store.list_held_messages(stream_id, cursor=cursor, limit=limit)
        # Every room's queue, filtered to this channel's streams (a store method by channel
        # would save the scan; the queue is short in practice).
        owners: dict[str, str | None] = {}

        async def held(cursor: str | None) -> Page[ChatMessage]:
            page = await self._store.list_held_messages(None, cursor=cursor, limit=limit)
            for message in page.items:
                if message.stream_id not in owners:
                    stream = await self._store.get_stream(message.stream_id)
                    owners[message.stream_id] = stream.user_id if stream else None
            return page

        return await scan(held, lambda m: owners[m.stream_id] == channel_id, cursor)

    async def review(self, actor: str, channel_id: str, message_id: str, *, approve: bool,
                     reason: str) -> ChatMessage:
        """Approve (visible, broadcast to the room) or reject (deleted) a held message."""
        room = await self.staff_room(channel_id, actor)
        message = await self._message(message_id, lambda m: True)
        if await self._channel_of(message.stream_id) != channel_id:
            raise _not_found("no such message", "message_not_found")
        if message.status != "held":
            raise ConflictError("that message is not awaiting review", code="not_held")
        entry = room.review(actor, message_id, approve=approve, reason=reason)
        audit = _record(entry, user=message.user_id, message=message_id,
                        details={"stream_id": message.stream_id})
        if approve:
            done = await self._store.set_chat_message_status(
                message_id, status="visible", expected=("held",), audit=audit)
        else:
            done = await self._store.set_chat_message_status(
                message_id, status="deleted", expected=("held",), by=actor, at=utcnow(),
                audit=audit)
        if done is None:
            raise ConflictError("that message is not awaiting review", code="not_held")
        if approve:
            user = await self._store.get_user(done.user_id)
            await self._tell(done.stream_id, {
                "type": "message", "message": message_body(done, user.username if user else "?"),
            })
        return done

    # -- appeals ---------------------------------------------------------------------------

    async def appeal(self, user_id: str, channel_id: str, text: str) -> Appeal:
        """A banned user asks for the ban to be lifted: one appeal per ban."""
        room = await self.room(channel_id)
        entry = room.appeal(user_id, text)  # 409 unless banned
        ban = await self._store.get_active_ban(channel_id, user_id)
        if ban is None:  # lifted since the state was read
            raise engine.InvalidTransition("only a banned user can appeal")
        appeal = Appeal(id=new_id(), ban_id=ban.id, channel_id=channel_id, user_id=user_id,
                        text=text, created_at=utcnow())
        try:
            await self._store.add_appeal(appeal)
        except Conflict:
            raise ConflictError("this ban has already been appealed",
                                code="already_appealed") from None
        await self._store.add_audit_entry(_record(
            entry, user=user_id, details={"ban_id": ban.id, "appeal_id": appeal.id}))
        return appeal

    async def appeals(self, actor: str, channel_id: str, *, status: str | None,
                      cursor: str | None, limit: int) -> Page[Appeal]:
        """Staff see the channel's appeals (pending by default); anyone else their own."""
        room = await self.room(channel_id)
        if room.state.role(actor) is not Role.VIEWER:
            return await self._store.list_appeals(channel_id, status=status, cursor=cursor,
                                                  limit=limit)
        return await scan(
            lambda c: self._store.list_appeals(channel_id, status=status, cursor=c,
                                               limit=limit),
            lambda a: a.user_id == actor, cursor)

    async def decide(self, actor: str, channel_id: str, appeal_id: str, *, lift: bool,
                     reason: str) -> Appeal:
        """Uphold or lift; the moderator who made the ban may not judge it (the owner may)."""
        room = await self.staff_room(channel_id, actor)
        appeal = await self._store.get_appeal(appeal_id)
        if appeal is None or appeal.channel_id != channel_id:
            raise _not_found("no such appeal", "appeal_not_found")
        if appeal.status != "pending":
            raise ConflictError("that appeal has been decided", code="appeal_decided")
        ban = await self._store.get_ban(appeal.ban_id)
        if ban is None:
            raise _not_found("no such appeal", "appeal_not_found")
        # The ban as the engine knows it, even if lifted since (the appeal is still open).
        room.state.bans[ban.user_id] = engine.Ban(
            0, ban.user_id, ban.banned_by, ban.reason, ban.created_at.timestamp(),
            appeal=engine.Appeal(appeal.text, appeal.created_at.timestamp()))
        entry = room.decide_appeal(actor, ban.user_id, lift=lift, reason=reason)
        decided = await self._store.decide_appeal(
            appeal_id, status="lifted" if lift else "upheld", by=actor, at=utcnow(),
            reason=entry.reason or None, audit=_record(
                entry, user=ban.user_id, details={"ban_id": ban.id, "appeal_id": appeal_id}))
        if decided is None:
            raise ConflictError("that appeal has been decided", code="appeal_decided")
        return decided


def room_settings_event(settings: RoomSettings) -> dict[str, Any]:
    """What viewers are told of a room's rules (the `joined` frame and a notice)."""
    return {"type": "settings", "slow_mode_s": settings.slow_mode_s,
            "followers_only": settings.followers_only_min_age_s is not None}
