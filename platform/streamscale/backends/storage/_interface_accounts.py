"""Account deletion and the platform-admin role: the part of `Store` that spans tables."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ._records import AuditEntry


class AccountStore(Protocol):
    async def delete_user(self, user_id: str, *, at: datetime) -> bool:
        """Erase an account's personal data in one transaction; True if it was done now.

        The users row stays as a tombstone (id, created_at, deleted_at) so chat messages,
        streams and moderation records keep a valid author; username, email, password
        hash, display name and bio are overwritten, follows (both ways), watch history,
        refresh tokens, channel roles held elsewhere and the platform-admin role are
        deleted, and every stream key is replaced by one that no key hashes to. From then
        on the user reads (get_user, by username, by email) do not find it and the username
        and email are free. False if there is no such (undeleted) user. Ending a live
        stream is the caller's job (it also tells the ingest and chat).
        """

    async def set_platform_admin(
        self, user_id: str, admin: bool, *, at: datetime, audit: AuditEntry | None = None
    ) -> bool:
        """Grant (True) or revoke (False) the platform-admin role; True if that changed
        something (audit written only then). NotFound if granting to an unknown user."""

    async def is_platform_admin(self, user_id: str) -> bool: ...

    async def list_platform_admins(self) -> list[str]:
        """User ids of the platform admins, oldest grant first."""
