"""`streamscale admin` as an operator runs it: a real process on a temp data dir
(issue 11 item 6): grant/revoke the platform-admin role, edit the global word list."""

from __future__ import annotations

from pathlib import Path

import trio
from test_cli import STREAMSCALE, _env

from streamscale.backends.storage import User, open_store
from streamscale.services.clock import new_id, utcnow


async def _admin(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = await trio.run_process([STREAMSCALE, "admin", *args], env=_env(tmp_path),
                                  capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'streamscale.db'}"  # STREAMSCALE_DATA_DIR


async def test_admin_cli_grants_and_edits_the_global_list(tmp_path: Path) -> None:
    now = utcnow()
    alice = User(id=new_id(), username="Alice", email="alice@example.com",
                 password_hash="x", display_name="Alice", bio="", created_at=now,
                 updated_at=now)
    async with await open_store(_url(tmp_path)) as store:
        await store.create_user(alice)

    assert await _admin(tmp_path, "grant", "alice") == (
        0, f"Alice ({alice.id}) is now a platform admin\n", "")
    assert (await _admin(tmp_path, "grant", "alice"))[1].endswith("was already a platform admin\n")
    assert (await _admin(tmp_path, "list"))[1] == f"Alice ({alice.id})\n"
    status, _, err = await _admin(tmp_path, "grant", "nobody")
    assert status == 1 and "no user named 'nobody'" in err

    assert await _admin(tmp_path, "words", "add", "Zorbl") == (0, "zorbl: added\n", "")
    assert (await _admin(tmp_path, "words", "add", "zorbl"))[1] == "zorbl: already on the list\n"
    assert (await _admin(tmp_path, "words", "add", "a b"))[0] == 2  # not a word
    assert (await _admin(tmp_path, "words", "list"))[1] == "zorbl\n"
    assert await _admin(tmp_path, "words", "remove", "ZORBL") == (0, "zorbl: removed\n", "")
    status, _, err = await _admin(tmp_path, "words", "remove", "zorbl")
    assert status == 1 and "not on the list" in err
    assert await _admin(tmp_path, "revoke", "alice") == (
        0, f"Alice ({alice.id}) is no longer a platform admin\n", "")
    assert (await _admin(tmp_path, "words"))[0] == 2  # usage: an action is required

    async with await open_store(_url(tmp_path)) as store:
        assert not await store.is_platform_admin(alice.id)
        assert await store.list_banned_words(None) == []
        log = await store.list_audit_entries(None)
        assert [(e.actor_id, e.action) for e in reversed(log.items)] == [
            ("operator", "platform_admin_grant"), ("operator", "banned_word_add"),
            ("operator", "banned_word_remove"), ("operator", "platform_admin_revoke")]
