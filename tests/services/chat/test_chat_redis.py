"""Several chat gateways and worker pools over one Redis bus and one Postgres: a message
posted on one gateway reaches viewers on the other, in order, persisted once."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import pytest
import trio

from streamscale.testing import make_config
from streamscale.testing.ws_client import open_chat_client

from .test_chat_e2e import platform_api, postgres_url, signup, start_stream, texts_until

__all__ = ["postgres_url"]  # the fixture, imported for this module's tests


@pytest.mark.redis
@pytest.mark.postgres
async def test_two_gateways_over_redis(tmp_path: Path, postgres_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    base = make_config(tmp_path, storage_url=postgres_url)

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
