"""Platform admins and the global banned-word list.

A platform admin is made by the operator (`streamscale admin grant USERNAME`, on the
configured store), never over the API. Admins edit the global list, which every chat
worker reads with each channel's state (`moderation_store`), so a word added here is
refused in every room within `chat.moderation_refresh_s`. Every change is audited in the
platform-wide log (channel None), like the channel moderation actions.
"""

from __future__ import annotations

from typing import Any

from ...backends.storage import AuditEntry, BannedWord, NotFound, Store, User
from ..clock import new_id, utcnow
from ..errors import Forbidden, NotFoundError
from .moderation import AuditAction, InvalidRule, WordList

OPERATOR = "operator"
"""The actor of audit entries made with the CLI (no user: whoever runs it owns the host)."""


def _entry(actor: str, action: str, *, user: str | None = None,
           details: dict[str, Any] | None = None) -> AuditEntry:
    return AuditEntry(id=new_id(), channel_id=None, actor_id=actor, action=action,
                      created_at=utcnow(), target_user_id=user, target_message_id=None,
                      reason=None, details=details)


class PlatformAdmin:
    """The admin actions; `trusted` (the CLI, as OPERATOR) skips the role check."""

    def __init__(self, store: Store, *, trusted: bool = False) -> None:
        self._store = store
        self._trusted = trusted

    async def check(self, actor: str) -> None:
        if not self._trusted and not await self._store.is_platform_admin(actor):
            raise Forbidden("only a platform admin may do that", code="not_platform_admin")

    async def words(self, actor: str) -> list[str]:
        await self.check(actor)
        return [w.word for w in await self._store.list_banned_words(None)]

    async def add_word(self, actor: str, word: str) -> tuple[str, bool]:
        """Ban a word ("word" or "prefix*") everywhere, normalised; True if it was new."""
        await self.check(actor)
        stored = WordList().add(word)  # InvalidRule (400) for what cannot be a word
        added = await self._store.add_banned_word(
            BannedWord(channel_id=None, word=stored, created_by=actor, created_at=utcnow()),
            audit=_entry(actor, str(AuditAction.BANNED_WORD_ADD), details={"word": stored}))
        return stored, added

    async def remove_word(self, actor: str, word: str) -> str:
        await self.check(actor)
        try:
            stored = WordList().add(word)
        except InvalidRule:
            raise NotFoundError("that word is not on the list", code="word_not_found") from None
        if not await self._store.remove_banned_word(
                None, stored,
                audit=_entry(actor, str(AuditAction.BANNED_WORD_REMOVE),
                             details={"word": stored})):
            raise NotFoundError("that word is not on the list", code="word_not_found")
        return stored


async def set_admin(store: Store, username: str, admin: bool) -> tuple[User, bool]:
    """The operator's grant/revoke: (the user, whether it changed). NotFoundError if no
    such user."""
    user = await store.get_user_by_username(username)
    if user is None:
        raise NotFoundError(f"no user named {username!r}", code="user_not_found")
    action = "platform_admin_grant" if admin else "platform_admin_revoke"
    try:
        changed = await store.set_platform_admin(
            user.id, admin, at=utcnow(), audit=_entry(OPERATOR, action, user=user.id))
    except NotFound:  # deleted in between
        raise NotFoundError(f"no user named {username!r}", code="user_not_found") from None
    return user, changed
