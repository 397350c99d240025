"""The account part of the `Store` contract (deletion, platform admins), on every backend.

Parametrised by `store_url` (conftest): SQLite file, SQLite in memory, PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from test_storage_contract import T0, _id, make_stream, make_token, make_user

from streamscale.backends.storage import (
    AuditEntry,
    ChatMessage,
    NotFound,
    SqlStore,
    open_store,
)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with await open_store(store_url) as opened:
        yield opened


def _entry(action: str, target: str) -> AuditEntry:
    return AuditEntry(id=_id(), channel_id=None, actor_id="operator", action=action,
                      created_at=T0, target_user_id=target, target_message_id=None,
                      reason=None, details=None)


async def test_platform_admin_grant_revoke_is_idempotent_and_audited_once(
    store: SqlStore,
) -> None:
    alice, bob = make_user(), make_user()
    for user in (alice, bob):
        await store.create_user(user)
    assert await store.list_platform_admins() == []
    assert not await store.is_platform_admin(alice.id)
    assert await store.set_platform_admin(bob.id, True, at=T0 + timedelta(seconds=1),
                                          audit=_entry("grant_admin", bob.id))
    assert await store.set_platform_admin(alice.id, True, at=T0 + timedelta(seconds=2),
                                          audit=_entry("grant_admin", alice.id))
    assert not await store.set_platform_admin(alice.id, True, at=T0,
                                              audit=_entry("grant_admin", alice.id))
    assert await store.is_platform_admin(alice.id)
    assert await store.list_platform_admins() == [bob.id, alice.id]  # oldest grant first
    assert await store.set_platform_admin(alice.id, False, at=T0,
                                          audit=_entry("revoke_admin", alice.id))
    assert not await store.set_platform_admin(alice.id, False, at=T0,
                                              audit=_entry("revoke_admin", alice.id))
    assert await store.list_platform_admins() == [bob.id]
    log = await store.list_audit_entries(None)
    assert sorted(e.action for e in log.items) == ["grant_admin", "grant_admin",
                                                   "revoke_admin"]
    with pytest.raises(NotFound):
        await store.set_platform_admin("nobody", True, at=T0)


async def test_delete_user_erases_personal_data_and_keeps_a_tombstone(store: SqlStore) -> None:
    alice, bob = make_user(), make_user()
    for user in (alice, bob):
        await store.create_user(user)
    stream = make_stream(alice.id)
    await store.create_stream(stream)
    await store.follow(user_id=bob.id, follower_id=alice.id, at=T0)
    await store.follow(user_id=alice.id, follower_id=bob.id, at=T0)
    token = make_token(alice.id)
    await store.add_refresh_token(token)
    await store.set_channel_role(bob.id, alice.id, "moderator", at=T0)
    await store.set_platform_admin(alice.id, True, at=T0)
    message, _ = await store.add_chat_message(ChatMessage(
        id=_id(), stream_id=stream.id, user_id=alice.id, message="hi", created_at=T0,
        client_msg_id="c1"))

    assert await store.delete_user(alice.id, at=T0 + timedelta(hours=1))
    assert not await store.delete_user(alice.id, at=T0 + timedelta(hours=2))  # once
    assert not await store.delete_user("nobody", at=T0)

    assert await store.get_user(alice.id) is None
    assert await store.get_user_by_username(alice.username) is None
    assert await store.get_user_by_email(alice.email) is None
    with pytest.raises(NotFound):
        await store.update_user(alice.id, bio="back", updated_at=T0)
    assert await store.count_followers(bob.id) == 0
    assert await store.count_following(bob.id) == 0
    assert await store.get_refresh_token(token.token_hash) is None
    assert await store.list_channel_roles(bob.id) == []
    assert not await store.is_platform_admin(alice.id)
    assert await store.get_stream_by_key_hash(stream.key_hash) is None
    kept = await store.get_stream(stream.id)
    assert kept is not None and kept.user_id == alice.id and kept.key_hash != stream.key_hash
    assert await store.get_chat_message(message.id) == message  # kept, author by id only
    # the username and email are free again
    await store.create_user(make_user(alice.username, email=alice.email))
    assert await store.get_user_by_username(alice.username) is not None
