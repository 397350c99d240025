"""Signing keys sealed at rest: AES-256-GCM under a key the operator supplies.

The `signing_keys.secret` column holds `SSK1 | nonce (12) | ciphertext + tag`, with the
row's kid as associated data (a sealed secret copied onto another row does not open).
A stolen database alone then yields no key that signs tokens. Rows written before
sealing existed hold the 32 plain bytes; `seal_plain_rows` seals them when a store is
opened with a key, inside one write transaction, so processes that start together seal
each row once and nothing is lost.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, select, text, update

from ._engine import WRITE_OPTION
from ._tables import signing_keys

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256
MAGIC = b"SSK1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
LOST_KEY_HINT = (
    "if that key is lost, delete the rows of the signing_keys table: a new signing key is "
    "made at start and clients refresh their access tokens (refresh tokens do not depend "
    "on it)"
)


class SecretsKeyError(Exception):
    """The secrets key is missing, malformed, or not the one the stored keys were sealed
    with. A start-up error: the message says what to fix."""


def parse_key(encoded: str, *, source: str) -> bytes:
    """A 32-byte key from base64 text (standard or URL-safe alphabet, padding optional)."""
    cleaned = "".join(encoded.split()).replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretsKeyError(
            f"{source}: not a secrets key: expected {KEY_BYTES} random bytes in base64 "
            "(make one with `openssl rand -base64 32`)"
        )
    return key


def new_key_text() -> str:
    """A fresh key as base64 text, the format `parse_key` reads."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n"


def is_sealed(blob: bytes) -> bool:
    # A plain secret is 32 bytes; a sealed one is at least 32 + 1 and starts with MAGIC.
    return len(blob) > len(MAGIC) + _NONCE_BYTES + _TAG_BYTES and blob.startswith(MAGIC)


class Sealer:
    """Seals and opens signing-key secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"a secrets key is {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(kid: str) -> bytes:
        return b"streamscale signing key " + kid.encode()

    def seal(self, secret: bytes, *, kid: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, secret, self._aad(kid))

    def open(self, blob: bytes, *, kid: str) -> bytes:
        """The plain secret, or SecretsKeyError if `blob` is not sealed with this key."""
        if not is_sealed(blob):
            raise SecretsKeyError(
                f"signing key {kid} is stored unsealed: it should have been sealed when the "
                "store was opened (a process of an older version wrote it?)"
            )
        nonce = blob[len(MAGIC):len(MAGIC) + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + _NONCE_BYTES:], self._aad(kid))
        except InvalidTag:
            raise SecretsKeyError(
                f"signing key {kid} in the database does not open with the configured "
                "secrets key: start with the key it was sealed with"
            ) from None


def seal_plain_rows(engine: Engine, sealer: Sealer) -> int:
    """Seal every plain row and check that every sealed one opens; blocking.

    One write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the same table lock
    `add_signing_key` takes), so two processes opening together seal each row once.
    Returns how many rows were sealed. Raises SecretsKeyError naming the first row that
    does not open with `sealer`'s key; then nothing is changed.
    """
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"))
        return _seal_rows(conn, sealer)


def _seal_rows(conn: Connection, sealer: Sealer) -> int:
    rows = conn.execute(select(signing_keys.c.kid, signing_keys.c.secret)).all()
    plain: list[tuple[str, bytes]] = []
    for kid, stored in rows:
        blob = bytes(stored)  # psycopg may hand back a memoryview
        if is_sealed(blob):
            try:
                sealer.open(blob, kid=kid)
            except SecretsKeyError as exc:
                raise SecretsKeyError(f"{exc}; {LOST_KEY_HINT}") from None
        else:
            plain.append((kid, blob))
    for kid, blob in plain:
        conn.execute(
            update(signing_keys)
            .where(signing_keys.c.kid == kid)
            .values(secret=sealer.seal(blob, kid=kid))
        )
    if plain:
        log.warning("sealed %d signing keys that were stored in plain text", len(plain))
    return len(plain)
