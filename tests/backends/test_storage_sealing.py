"""Signing keys sealed at rest, on every backend: what the column holds, reopening with the
same key, a wrong key, a store without a key, and sealing the plain rows of an older version.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio
from sqlalchemy import insert, select, update

from streamscale.backends.storage import (
    SecretsKeyError,
    SigningKey,
    SqlStore,
    open_store,
    parse_key,
)
from streamscale.backends.storage._sealing import MAGIC
from streamscale.backends.storage._tables import signing_keys

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = bytes(range(200, 232))


async def raw_secrets(store: SqlStore) -> dict[str, bytes]:
    """The signing_keys.secret column as stored, by kid."""

    def work() -> dict[str, bytes]:
        with store.engine.connect() as conn:
            rows = conn.execute(select(signing_keys.c.kid, signing_keys.c.secret)).all()
        return {kid: bytes(secret) for kid, secret in rows}

    return await trio.to_thread.run_sync(work)


async def write_plain(store: SqlStore, *keys: SigningKey) -> None:
    """Rows as a version without sealing wrote them: the 32 plain bytes."""

    def work() -> None:
        with store.engine.begin() as conn:
            for key in keys:
                conn.execute(insert(signing_keys).values(
                    kid=key.kid, secret=key.secret, created_at=key.created_at,
                    retires_at=key.retires_at))

    await trio.to_thread.run_sync(work)


async def test_the_column_holds_no_plain_key_and_reopening_reads_it(file_url: str) -> None:
    key = SigningKey(kid="k1", secret=SECRET, created_at=T0, retires_at=None)
    async with await open_store(file_url, secrets_key=KEY) as store:
        await store.add_signing_key(key, retire_others_at=T0)
        stored = (await raw_secrets(store))["k1"]
        assert stored != SECRET and SECRET not in stored and stored.startswith(MAGIC)
        assert await store.list_signing_keys(now=T0) == [key]
    async with await open_store(file_url, secrets_key=KEY) as store:  # a restart
        assert await store.list_signing_keys(now=T0) == [key]
        assert (await raw_secrets(store))["k1"] == stored  # opening seals nothing again


async def test_a_wrong_key_is_a_clear_error_and_changes_nothing(file_url: str) -> None:
    key = SigningKey(kid="k1", secret=SECRET, created_at=T0, retires_at=None)
    async with await open_store(file_url, secrets_key=KEY) as store:
        await store.add_signing_key(key, retire_others_at=T0)
        before = await raw_secrets(store)
    with pytest.raises(SecretsKeyError, match=r"signing key k1 .* does not open with the "
                       r"configured secrets key.*delete the rows of the signing_keys table"):
        await open_store(file_url, secrets_key=OTHER_KEY)
    async with await open_store(file_url, secrets_key=KEY) as store:
        assert await raw_secrets(store) == before
        assert await store.list_signing_keys(now=T0) == [key]


async def test_plain_rows_are_sealed_on_open_and_nothing_is_lost(file_url: str) -> None:
    old = SigningKey(kid="old", secret=b"o" * 32, created_at=T0,
                     retires_at=T0 + timedelta(hours=1))
    retired = SigningKey(kid="gone", secret=b"g" * 32, created_at=T0 - timedelta(days=9),
                         retires_at=T0 - timedelta(days=1))
    new = SigningKey(kid="new", secret=SECRET, created_at=T0 + timedelta(minutes=1),
                     retires_at=None)
    async with await open_store(file_url) as store:  # no key: writes nothing itself
        await write_plain(store, old, retired, new)
    async with await open_store(file_url, secrets_key=KEY) as store:
        stored = await raw_secrets(store)
        assert all(blob.startswith(MAGIC) for blob in stored.values())
        assert not any(k.secret in stored[k.kid] for k in (old, retired, new))
        assert await store.list_signing_keys(now=T0) == [new, old]
    async with await open_store(file_url, secrets_key=KEY) as store:
        assert await raw_secrets(store) == stored  # sealed once
        assert await store.list_signing_keys(now=T0) == [new, old]


async def test_processes_opening_together_seal_each_row_once(file_url: str) -> None:
    key = SigningKey(kid="k1", secret=SECRET, created_at=T0, retires_at=None)
    async with await open_store(file_url) as store:
        await write_plain(store, key)
    opened: list[SqlStore] = []

    async def open_one() -> None:
        opened.append(await open_store(file_url, secrets_key=KEY))

    try:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(open_one)
        for store in opened:
            assert await store.list_signing_keys(now=T0) == [key]
    finally:
        for store in opened:
            await store.close()


async def test_a_sealed_secret_opens_only_on_its_own_row(file_url: str) -> None:
    async with await open_store(file_url, secrets_key=KEY) as store:
        for kid in ("a", "b"):
            await store.add_signing_key(
                SigningKey(kid=kid, secret=SECRET, created_at=T0, retires_at=None),
                retire_others_at=T0 + timedelta(days=1))
        sealed_a = (await raw_secrets(store))["a"]

        def swap() -> None:
            with store.engine.begin() as conn:
                conn.execute(update(signing_keys).where(signing_keys.c.kid == "b")
                             .values(secret=sealed_a))

        await trio.to_thread.run_sync(swap)
        with pytest.raises(SecretsKeyError, match="signing key b"):
            await store.list_signing_keys(now=T0)


async def test_a_store_without_a_key_refuses_signing_keys(store_url: str) -> None:
    async with await open_store(store_url) as store:
        key = SigningKey(kid="k1", secret=SECRET, created_at=T0, retires_at=None)
        with pytest.raises(SecretsKeyError, match="without a secrets key"):
            await store.add_signing_key(key, retire_others_at=T0)
        with pytest.raises(SecretsKeyError, match="without a secrets key"):
            await store.list_signing_keys(now=T0)
        assert await raw_secrets(store) == {}


@pytest.mark.parametrize("text", [
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # openssl rand -base64 32
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",  # URL-safe alphabet, no padding
])
def test_keys_are_read_as_base64(text: str) -> None:
    assert parse_key(text, source="test") == KEY


@pytest.mark.parametrize("text", ["", "not a key", "AAEC", "A" * 64, "é" * 44])
def test_a_malformed_key_names_its_source(text: str) -> None:
    with pytest.raises(SecretsKeyError, match=r"^from here: not a secrets key: expected 32"):
        parse_key(text, source="from here")
