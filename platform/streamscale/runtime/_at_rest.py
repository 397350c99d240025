"""What the platform keeps on disk is its owner's alone, and signing keys stay sealed.

`secure_data_dir` runs at start-up: the data dir and the recordings folder are made (or
narrowed to) 0700, with a log line when an existing one was open to others. The SQLite
file and its -wal/-shm are made 0600 by the storage backend itself. `streamscale up` also
sets the umask to 077, so every file the platform creates is private from the start.

`load_secrets_key` finds the key that seals signing keys in the database: the operator's
(`auth.secrets_key_file` or `auth.secrets_key`), else `data_dir/secrets.key`, made 0600
on first start so the embedded default runs with no setup. A key beside the database
protects against other local users, not against a copy of the whole data dir: a real
deployment keeps the key elsewhere (README, "Secrets at rest").
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from ..backends.storage import SecretsKeyError, new_key_text, parse_key
from ..config import Config

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secrets.key"


def secure_data_dir(config: Config) -> None:
    """Make the data dir and the recordings folder owner-only (blocking)."""
    data_dir = config.data_dir
    _owner_only_dir(data_dir, fix=True)
    recordings = config.recordings_root
    # A recordings folder the operator put elsewhere may be shared on purpose (a web
    # server reading it): made 0700 when new, only warned about when already open.
    inside = recordings.resolve().is_relative_to(data_dir.resolve())
    _owner_only_dir(recordings, fix=inside)


def _owner_only_dir(path: Path, *, fix: bool) -> None:
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    mode = path.stat().st_mode & 0o777
    if not mode & 0o077:
        return
    if fix:
        path.chmod(0o700)
        log.warning("data folder %s was mode %04o (others could read it): now 0700",
                    path, mode)
    else:
        log.warning("%s is mode %04o: other local users can read it (chmod 700 unless "
                    "that is intended)", path, mode)


def load_secrets_key(config: Config) -> tuple[bytes, str]:
    """The secrets key and where it came from, for messages (blocking)."""
    auth = config.auth
    if auth.secrets_key:
        source = "auth.secrets_key"
        return parse_key(auth.secrets_key, source=source), source
    if auth.secrets_key_file:
        path = Path(auth.secrets_key_file)
        source = f"auth.secrets_key_file {path}"
        try:
            encoded = path.read_text()
            mode = path.stat().st_mode & 0o777
        except OSError as exc:
            raise SecretsKeyError(f"{source}: cannot read it: {exc.strerror}") from None
        if mode & 0o077:
            log.warning("%s is mode %04o: other local users can read the secrets key "
                        "(chmod 600)", path, mode)
        return parse_key(encoded, source=source), source
    path = config.data_dir / KEY_FILE_NAME
    source = f"{path} (generated; set auth.secrets_key_file for a real deployment)"
    return parse_key(_read_or_make_key_file(path), source=source), source


def _read_or_make_key_file(path: Path) -> str:
    """The text of `path`, made 0600 with a new key if missing (race-free: several
    processes starting together all read the one key that was linked first)."""
    with contextlib.suppress(FileNotFoundError):
        return _read_private(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(new_key_text())
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # fails if another process linked its key first
            log.warning("no secrets key configured: made %s (0600) to seal signing keys; a "
                        "real deployment keeps its key outside the data dir", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink()
    return _read_private(path)


def _read_private(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(0o600)
        log.warning("%s was mode %04o (others could read it): now 0600", path, mode)
    return path.read_text()
