"""Secrets at rest from outside: file modes after start, tokens across a restart, a wrong
key, and a database whose signing keys an older version stored in plain text."""

from __future__ import annotations

import base64
import logging
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import trio
from sqlalchemy import create_engine, select, update

from streamscale.backends.storage import SecretsKeyError
from streamscale.backends.storage._tables import signing_keys
from streamscale.config import Config, ConfigError, load
from streamscale.runtime import Resources
from streamscale.services.clock import utcnow
from streamscale.testing import make_config, running_platform

STREAMSCALE = str(Path(sys.executable).parent / "streamscale")
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()


def _config(data_dir: Path, secrets_key: str = "") -> Config:
    config = make_config(data_dir)
    return replace(config, auth=replace(config.auth, secrets_key=secrets_key))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@asynccontextmanager
async def _api(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    async with running_platform(config) as platform:
        base = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client


async def _token(api: httpx.AsyncClient) -> dict[str, str]:
    r = await api.post("/api/users/register", json={
        "username": "keeper", "email": "keeper@example.com", "password": "pass word 1"})
    assert r.status_code == 201, r.text
    r = await api.post("/api/users/login", json={"login": "keeper", "password": "pass word 1"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _raw_secrets(db: Path) -> dict[str, bytes]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(signing_keys.c.kid, signing_keys.c.secret)).all()
    finally:
        engine.dispose()
    return {kid: bytes(secret) for kid, secret in rows}


async def _plain_secrets(config: Config) -> dict[str, bytes]:
    resources = Resources(config)
    try:
        store = await resources.store()
        return {k.kid: k.secret for k in await store.list_signing_keys(now=utcnow())}
    finally:
        await resources.aclose()


async def test_data_dir_and_database_are_owner_only_after_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # as an older version, or a plain mkdir, left it
    caplog.set_level(logging.WARNING)
    async with _api(_config(data_dir)):
        db = data_dir / "streamscale.db"
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), data_dir / "secrets.key"]
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(data_dir) == 0o700 and _mode(data_dir / "recordings") == 0o700
    assert f"data folder {data_dir} was mode 0755 (others could read it): now 0700" in (
        caplog.text)

    db.chmod(0o644)  # an existing database others can read is narrowed too
    caplog.clear()
    async with _api(_config(data_dir)):
        assert _mode(db) == 0o600
    assert f"{db} was mode 0644 (others could read it): now 0600" in caplog.text


async def test_tokens_survive_a_restart_and_the_database_holds_no_plain_key(
    tmp_path: Path
) -> None:
    config = _config(tmp_path / "var")
    async with _api(config) as api:
        auth = await _token(api)
    plain = await _plain_secrets(config)
    stored = _raw_secrets(config.data_dir / "streamscale.db")
    assert plain.keys() == stored.keys() and plain
    assert not any(plain[kid] in stored[kid] for kid in plain)
    async with _api(config) as api:  # the same data dir: the same generated key
        r = await api.get("/api/users/me", headers=auth)
        assert r.status_code == 200 and r.json()["username"] == "keeper"


async def test_plain_keys_of_an_older_version_are_sealed_and_tokens_still_verify(
    tmp_path: Path
) -> None:
    config = _config(tmp_path / "var", secrets_key=KEY_A)
    async with _api(config) as api:
        auth = await _token(api)
    db = config.data_dir / "streamscale.db"
    plain = await _plain_secrets(config)
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:  # the database as a version without sealing left it
            for kid, secret in plain.items():
                conn.execute(update(signing_keys).where(signing_keys.c.kid == kid)
                             .values(secret=secret))
    finally:
        engine.dispose()
    assert _raw_secrets(db) == plain
    async with _api(config) as api:
        assert (await api.get("/api/users/me", headers=auth)).status_code == 200
    stored = _raw_secrets(db)
    assert stored.keys() == plain.keys()
    assert not any(plain[kid] in stored[kid] for kid in plain)


async def test_a_wrong_key_is_a_clear_start_up_error(tmp_path: Path) -> None:
    config = _config(tmp_path / "var", secrets_key=KEY_A)
    async with _api(config) as api:
        await _token(api)
    with pytest.RaisesGroup(pytest.RaisesExc(
        SecretsKeyError, match=r"does not open with the configured secrets key.*"
        r"\[secrets key: auth.secrets_key\]"), flatten_subgroups=True):
        async with _api(_config(config.data_dir, secrets_key=KEY_B)):
            pass  # pragma: no cover

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCALE_")}
    env.update(STREAMSCALE_DATA_DIR=str(config.data_dir), STREAMSCALE_GATEWAY__PORT="0",
               STREAMSCALE_AUTH__SECRETS_KEY=KEY_B)
    result = await trio.run_process(
        [STREAMSCALE, "up", "--services", "gateway"], env=env, capture_stdout=True,
        capture_stderr=True, check=False)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "streamscale up: signing key" in err and "Traceback" not in err
    assert "does not open with the configured secrets key" in err


async def test_streamscale_up_sets_an_owner_only_umask(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCALE_")}
    env.update(STREAMSCALE_DATA_DIR=str(tmp_path / "var"), STREAMSCALE_GATEWAY__PORT="0")
    proc = await trio.lowlevel.open_process(
        [STREAMSCALE, "up", "--services", "gateway"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        out = b""
        with trio.fail_after(30):
            while b"streamscale: ready" not in out:
                chunk = await proc.stdout.receive_some()
                assert chunk, out
                out += chunk
        status = await trio.Path(f"/proc/{proc.pid}/status").read_text()
        assert "Umask:\t0077" in status
        assert _mode(tmp_path / "var") == 0o700
        assert _mode(tmp_path / "var" / "streamscale.db") == 0o600
    finally:
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            await proc.wait()


async def test_an_operator_key_file_is_used_and_no_key_is_made_in_the_data_dir(
    tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "streamscale.key"
    key_file.parent.mkdir()
    key_file.write_text(KEY_A + "\n")
    key_file.chmod(0o600)
    config = make_config(tmp_path / "var")
    config = replace(config, auth=replace(config.auth, secrets_key_file=str(key_file)))
    async with _api(config) as api:
        auth = await _token(api)
    assert not (config.data_dir / "secrets.key").exists()
    # The same key given as the value itself opens the same database.
    async with _api(_config(config.data_dir, secrets_key=KEY_A)) as api:
        assert (await api.get("/api/users/me", headers=auth)).status_code == 200


def test_the_key_stays_out_of_reprs_and_only_one_source_is_allowed(tmp_path: Path) -> None:
    config = load(environ={"STREAMSCALE_AUTH__SECRETS_KEY": KEY_A})
    assert config.auth.secrets_key == KEY_A and KEY_A not in repr(config)
    with pytest.raises(ConfigError, match="set secrets_key_file or secrets_key, not both"):
        load(environ={"STREAMSCALE_AUTH__SECRETS_KEY": KEY_A,
                      "STREAMSCALE_AUTH__SECRETS_KEY_FILE": str(tmp_path / "key")})
