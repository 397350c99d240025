"""The chat and moderation part of the storage interface (`Store` inherits both).

Moderation state is per channel (the streamer's user id), so it outlives any one stream.
Every mutation that a moderator makes takes an optional `audit` entry, written in the same
transaction only if the change happened: the log has one entry per real action, and none
for the loser of a race or for a no-op.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ._records import (
    Appeal,
    AuditEntry,
    Ban,
    BannedWord,
    ChannelRole,
    ChatMessage,
    ChatTimeout,
    Page,
    RoomSettings,
)


class ChatStore(Protocol):
    async def add_chat_message(self, message: ChatMessage) -> tuple[ChatMessage, bool]:
        """Persist a message, idempotent by (stream_id, user_id, client_msg_id).

        Returns (the stored message, True), its `seq` the room's next number (strictly
        increasing per room, gap-free, race-free across processes); `message.seq` is
        ignored. A retry returns (the original message, False): never a second row or seq.
        `status` must be "visible" or "held" (ValueError). Conflict("id") if another
        message has that id.
        """

    async def get_chat_message(self, message_id: str) -> ChatMessage | None:
        """Any status, deleted included."""

    async def list_chat_messages(
        self,
        stream_id: str,
        *,
        cursor: str | None = None,
        limit: int = 50,
        include_held: bool = False,
    ) -> Page[ChatMessage]:
        """Room history, newest first by seq: visible messages (and held ones if asked),
        never deleted ones. ValueError("invalid cursor") for a cursor this did not make."""

    async def set_chat_message_status(
        self,
        message_id: str,
        *,
        status: str,
        expected: tuple[str, ...],
        by: str | None = None,
        at: datetime | None = None,
        audit: AuditEntry | None = None,
    ) -> ChatMessage | None:
        """Compare-and-set the status: only if the current one is in `expected`.

        E.g. approve: status="visible", expected=("held",); delete: status="deleted",
        expected=("visible", "held"), which also needs `by` and `at` (deleted_by,
        deleted_at). Returns the updated message, or None (nothing written, no audit)
        if it is missing or its status was not in `expected`.
        """

    async def list_held_messages(
        self, stream_id: str | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[ChatMessage]:
        """The review queue: held messages of one room, or of every room when None,
        newest first (created_at, id)."""


class ModerationStore(Protocol):
    # roles ------------------------------------------------------------------------------
    async def set_channel_role(
        self,
        channel_id: str,
        user_id: str,
        role: str | None,
        *,
        at: datetime,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Grant "owner" or "moderator", or remove any role with None.

        True if something changed. NotFound if either user does not exist.
        """

    async def get_channel_role(self, channel_id: str, user_id: str) -> str | None: ...

    async def list_channel_roles(self, channel_id: str) -> list[ChannelRole]:
        """Owners first, then moderators, oldest grant first."""

    # bans -------------------------------------------------------------------------------
    async def add_ban(self, ban: Ban, *, audit: AuditEntry | None = None) -> tuple[Ban, bool]:
        """Ban, unless already banned: then (the active ban, False), nothing written.

        At most one active ban per (channel, user), whatever the races. `ban.lifted_*` are
        ignored. NotFound if either user does not exist; Conflict("id") for a reused id.
        """

    async def lift_ban(
        self, ban_id: str, *, by: str, at: datetime, audit: AuditEntry | None = None
    ) -> Ban | None:
        """Compare-and-set: lift only an active ban. None if missing or already lifted."""

    async def get_ban(self, ban_id: str) -> Ban | None: ...

    async def get_active_ban(self, channel_id: str, user_id: str) -> Ban | None: ...

    async def list_bans(
        self,
        channel_id: str,
        *,
        active_only: bool = True,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Ban]:
        """Newest first (created_at, id)."""

    # timeouts ---------------------------------------------------------------------------
    async def set_timeout(
        self, chat_timeout: ChatTimeout, *, audit: AuditEntry | None = None
    ) -> None:
        """Time a user out, replacing any timeout they had. NotFound for unknown users."""

    async def clear_timeout(
        self, channel_id: str, user_id: str, *, now: datetime, audit: AuditEntry | None = None
    ) -> bool:
        """End a timeout early; True if one was active at `now`."""

    async def get_timeout(
        self, channel_id: str, user_id: str, *, now: datetime
    ) -> ChatTimeout | None:
        """The timeout in force at `now` (until > now), if any."""

    async def list_timeouts(self, channel_id: str, *, now: datetime) -> list[ChatTimeout]:
        """Timeouts in force at `now`, soonest to end first."""

    # room settings and banned words -----------------------------------------------------
    async def get_room_settings(self, channel_id: str) -> RoomSettings:
        """The channel's settings, or the defaults (updated_at None) if never set."""

    async def set_room_settings(
        self, settings: RoomSettings, *, audit: AuditEntry | None = None
    ) -> None:
        """Replace them all (last writer wins); updated_at and updated_by are required.

        ValueError for a negative slow mode or age, or an unknown link policy; NotFound if
        the channel's user does not exist.
        """

    async def add_banned_word(self, word: BannedWord, *, audit: AuditEntry | None = None) -> bool:
        """True if added, False if that list already had it."""

    async def remove_banned_word(
        self, channel_id: str | None, word: str, *, audit: AuditEntry | None = None
    ) -> bool:
        """True if removed from that list (None: the global one)."""

    async def list_banned_words(self, channel_id: str | None) -> list[BannedWord]:
        """The words in force in `channel_id`: the global list and the channel's own, each
        word telling which list it is on (channel_id None: global). None: the global list.
        Ordered by word, global first on a tie."""

    # audit log --------------------------------------------------------------------------
    async def add_audit_entry(self, entry: AuditEntry) -> None:
        """Append; Conflict("id") for a reused id. Prefer a mutation's `audit` argument."""

    async def list_audit_entries(
        self,
        channel_id: str | None,
        *,
        target_user_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AuditEntry]:
        """A channel's log (None: platform-wide entries), newest first (created_at, id)."""

    # appeals ----------------------------------------------------------------------------
    async def add_appeal(self, appeal: Appeal) -> None:
        """File a pending appeal against a ban. Conflict("ban_id") if that ban already has
        one; NotFound if the ban does not exist; ValueError if the appeal's channel or user
        is not the ban's, or its status is not "pending"."""

    async def get_appeal(self, appeal_id: str) -> Appeal | None: ...

    async def list_appeals(
        self,
        channel_id: str,
        *,
        status: str | None = "pending",
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Appeal]:
        """Newest first (created_at, id); every status when `status` is None."""

    async def decide_appeal(
        self,
        appeal_id: str,
        *,
        status: str,
        by: str,
        at: datetime,
        reason: str | None = None,
        audit: AuditEntry | None = None,
    ) -> Appeal | None:
        """Compare-and-set: decide a pending appeal, "upheld" or "lifted".

        "lifted" also lifts the ban (if still active) in the same transaction. Returns the
        decided appeal, or None if it is missing or no longer pending (nothing written).
        """
