"""Several chat gateways and worker pools over one Redis bus and one Postgres: a message
posted on one gateway reaches viewers on the other, in order, persisted once."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from streamscale.config import Config
from streamscale.testing import make_config
from streamscale.testing.ws_client import open_chat_client

from .test_chat_e2e import platform_api, postgres_url, signup, start_stream, texts_until

__all__ = ["postgres_url"]  # the fixture, imported for this module's tests

# Processes sharing a database share the key that seals its signing keys (README,
# "Secrets at rest"); each has its own data dir, so none may generate its own.
SECRETS_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def _shared_key(config: Config) -> Config:
    return dataclasses.replace(config, auth=dataclasses.replace(config.auth,
                                                                secrets_key=SECRETS_KEY))


@pytest.mark.redis
@pytest.mark.postgres
async def test_two_gateways_over_redis(tmp_path: Path, postgres_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    base = _shared_key(make_config(tmp_path, storage_url=postgres_url))

    def node(name: str) -> object:
        config = dataclasses.replace(base, data_dir=tmp_path / name, chat=dataclasses.replace(
            base.chat, bus_url=f"redis://127.0.0.1:6379/0?prefix={prefix}", workers=1))
        return platform_api(config)

    async with node("one") as (api1, ws1), node("two") as (api2, ws2):  # type: ignore[attr-defined]
        _, alice = await signup(api1, "alice")
        _, bob = await signup(api2, "bob")
        room = await start_stream(api1, alice)
        async with open_chat_client(ws1) as a, open_chat_client(ws2) as b:
            await a.join(room, alice)
            await b.join(room, bob)
            with trio.fail_after(10):
                for i in range(5):
                    assert (await a.post(f"a{i}", f"from one {i}"))["type"] == "ack"
                assert (await b.post("b0", "from two"))["type"] == "ack"
            expected = [f"from one {i}" for i in range(5)] + ["from two"]
            assert await texts_until(b, 6) == expected
            assert await texts_until(a, 6) == expected
        r = await api2.get(f"/api/streams/{room}/chat", params={"limit": 100})
        assert [m["text"] for m in reversed(r.json()["items"])] == expected


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_second_gateway_process(tmp_path: Path, postgres_url: str) -> None:
    """A separate `streamscale up --services chat` process joins the same room over Redis."""
    prefix = f"p{secrets.token_hex(4)}"
    bus_url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    base = _shared_key(make_config(tmp_path, storage_url=postgres_url))
    config = dataclasses.replace(base, chat=dataclasses.replace(base.chat, bus_url=bus_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCALE_")}
    env.update(STREAMSCALE_DATA_DIR=str(tmp_path / "proc"), STREAMSCALE_CHAT__PORT="0",
               STREAMSCALE_STORAGE__URL=postgres_url, STREAMSCALE_CHAT__BUS_URL=bus_url,
               STREAMSCALE_CHAT__TOXICITY_MODEL="false", STREAMSCALE_AUTH__SECRETS_KEY=SECRETS_KEY)
    async with platform_api(config) as (api, ws1):
        _, alice = await signup(api, "alice")  # also migrates the schema first
        _, bob = await signup(api, "bob")
        room = await start_stream(api, alice)
        proc = await trio.lowlevel.open_process(
            [str(Path(sys.executable).parent / "streamscale"), "up", "--services", "chat"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            ws2 = await _printed_url(proc, "ws")
            async with open_chat_client(ws1) as a, open_chat_client(ws2) as b:
                await a.join(room, alice)
                await b.join(room, bob)
                with trio.fail_after(10):
                    assert (await b.post("b0", "from the other process"))["type"] == "ack"
                    assert (await a.post("a0", "and back"))["type"] == "ack"
                expected = ["from the other process", "and back"]
                assert await texts_until(a, 2) == expected
                assert await texts_until(b, 2) == expected
        finally:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _printed_url(proc: trio.Process, label: str) -> str:
    """The URL `streamscale up` prints for `label`, read from its stdout."""
    assert proc.stdout is not None
    buffer = b""
    with trio.fail_after(60):
        while True:
            chunk = await proc.stdout.receive_some()
            assert chunk, "streamscale up exited early"
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] == label and "://" in parts[2]:
                    return parts[2]
