"""Chat limits as an operator sets them and a client meets them, through the platform's
gateway and chat services (HTTP posts with httpx, WebSocket posts with a wsproto client)."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import pytest
import trio

from streamscale.config import ChatConfig, ConfigError, load
from streamscale.protocols.chat import ErrorCode
from streamscale.services.chat.fanout import ChatGateway, serve_chat
from streamscale.services.chat.service import gateway_limits
from streamscale.testing import make_config
from streamscale.testing.ws_client import open_chat_client

from .test_chat_e2e import platform_api, signup, start_stream


async def test_one_user_limit_over_http_and_websocket_together(tmp_path: Path) -> None:
    """The configured per-user rate applies to HTTP and WebSocket posts in total, and it is
    the only one: 25 posts in 10 s pass (a hidden 20 per 30 s used to refuse the 21st)."""
    config = make_config(tmp_path)
    config = dataclasses.replace(config, chat=dataclasses.replace(
        config.chat, toxicity_model=False, user_rate_per_10s=25, room_rate_per_s=1000))
    async with platform_api(config) as (api, ws):
        _, streamer = await signup(api, "erin")
        room = await start_stream(api, streamer)
        _, token = await signup(api, "gus")  # a viewer: the streamer is exempt from limits
        auth = {"Authorization": f"Bearer {token}"}
        accepted = 0
        refused: list[str] = []
        async with open_chat_client(ws) as client:
            await client.join(room, token)
            for i in range(30):
                if i % 2:
                    r = await api.post(f"/api/streams/{room}/chat", headers=auth,
                                       json={"client_id": f"h{i}", "text": f"http {i}"})
                    if r.status_code == 201:
                        accepted += 1
                    else:
                        assert r.status_code == 429, r.text
                        refused.append(r.json()["error"]["code"])
                else:
                    frame = await client.post(f"w{i}", f"ws {i}")
                    if frame["type"] == "ack":
                        accepted += 1
                    else:
                        refused.append(frame["code"])
        assert accepted == 25
        assert refused == ["rate_limited"] * 5


async def test_gateway_limits_come_from_the_config(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, chat=dataclasses.replace(
        config.chat, toxicity_model=False, frames_per_s=0.001, frames_burst=3))
    async with platform_api(config) as (_api, ws), open_chat_client(ws) as client:
        for i in range(3):
            await client.send_json({"v": 1, "type": "ping", "id": f"p{i}"})
            assert (await client.receive())["type"] == "pong"
        await client.send_json({"v": 1, "type": "ping", "id": "p3"})
        frame = await client.receive()
        assert frame["type"] == "error" and frame["code"] == ErrorCode.RATE_LIMITED


def test_every_gateway_key_reaches_the_gateway() -> None:
    chat = ChatConfig(batch_interval_s=0.2, viewer_cap_per_s=7.5, frames_per_s=2.0,
                      frames_burst=4, send_queue_frames=9)
    limits = gateway_limits(chat)
    assert (limits.batch_interval_s, limits.viewer_cap_per_s, limits.frames_per_s,
            limits.frames_burst, limits.send_queue_frames) == (0.2, 7.5, 2.0, 4, 9)


@pytest.mark.parametrize(("key", "value"), [
    ("batch_interval_s", "0"), ("batch_interval_s", "5"), ("viewer_cap_per_s", "-1"),
    ("viewer_cap_per_s", "nan"),
    ("viewer_cap_per_s", "0.5"), ("frames_per_s", "0"), ("frames_burst", "0"),
    ("frames_burst", "1.5"), ("send_queue_frames", "-3"),
])
def test_gateway_keys_are_validated(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^chat\.{key}: "):
        load(None, environ={f"STREAMSCALE_CHAT__{key.upper()}": value})


async def test_joining_a_room_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, chat=dataclasses.replace(
        config.chat, toxicity_model=False))
    async with platform_api(config) as (api, ws):
        _, token = await signup(api, "finn")
        room = await start_stream(api, token)
        async with open_chat_client(ws) as client:
            await client.send_json({"v": 1, "type": "join", "room": "no-such-room",
                                    "token": token})
            frame = await client.receive()
            assert frame["type"] == "error" and frame["code"] == "no_such_stream", frame
            # Not in any room: a post is refused as before a join.
            frame = await client.post("c1", "hello?")
            assert frame["type"] == "error" and frame["code"] == ErrorCode.NOT_JOINED
            joined = await client.join(room, token)
            assert joined["type"] == "joined" and joined["can_post"] is True
            assert (await client.post("c2", "hello"))["type"] == "ack"
            with trio.fail_after(10):
                batch = await client.receive_type("batch")
            assert [m["text"] for m in batch["messages"]] == ["hello"]


async def test_a_refused_join_subscribes_nothing() -> None:
    joined: list[str] = []

    async def room_exists(room: str) -> bool:
        await trio.lowlevel.checkpoint()
        return room == "s1"

    gateway = ChatGateway(room_exists=room_exists, on_join=joined.append)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_chat, gateway, host="127.0.0.1", port=0,
                                          shutdown=shutdown))
        async with open_chat_client(url) as client:
            assert (await client.join("s1"))["room"] == "s1"
            await client.send_json({"v": 1, "type": "join", "room": "s2"})
            frame = await client.receive()
            assert (frame["type"], frame["code"]) == ("error", ErrorCode.NO_SUCH_STREAM)
            assert joined == ["s1"] and list(gateway.rooms) == ["s1"]  # still in s1
            assert len(gateway.rooms["s1"].members) == 1
        shutdown.set()
