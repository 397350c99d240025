"""Flood control: per-user and per-room limits, and a flood drill in which many senders
offer ten times the room's limit while an ordinary chatter keeps being heard."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from streamscale.config import ChatConfig
from streamscale.services.chat.pipeline import PostRejected
from streamscale.services.chat.service import PostLimits
from streamscale.testing import make_config
from streamscale.testing.ws_client import open_chat_client

from .test_chat_e2e import platform_api, signup, start_stream, texts_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_room_limit_refuses_frequent_posters_not_quiet_ones() -> None:
    clock = FakeClock()
    limits = PostLimits(ChatConfig(room_rate_per_s=3, user_rate_per_10s=10), quiet_s=2.0,
                        clock=clock)
    for _ in range(3):
        limits.check("flooder", "room")  # fills the room's budget for this second
    with pytest.raises(PostRejected) as busy:
        limits.check("flooder", "room")
    assert busy.value.code == "room_busy"
    limits.check("quiet", "room")  # never posted here: not refused for a busy room
    with pytest.raises(PostRejected, match="too busy"):
        limits.check("quiet", "room")  # ...but posting again at once competes
    clock.now += 2.0
    limits.check("quiet", "room")  # quiet again after room_quiet_s
    limits.check("flooder", "other-room")  # rooms are separate


def test_user_limit() -> None:
    limits = PostLimits(ChatConfig(user_rate_per_10s=2, room_rate_per_s=100))
    limits.check("u", "r")
    limits.check("u", "r")
    with pytest.raises(PostRejected) as refused:
        limits.check("u", "r")
    assert refused.value.code == "rate_limited"


async def test_flood_drill_keeps_the_conversation_and_loses_nothing_acked(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, chat=dataclasses.replace(
        config.chat, room_rate_per_s=5, user_rate_per_10s=10, room_quiet_s=0.2,
        toxicity_model=False))
    async with platform_api(config) as (api, ws):
        _, host = await signup(api, "host")
        room = await start_stream(api, host)
        flooders = [(await signup(api, f"flood{i}"))[1] for i in range(10)]
        _, chatter = await signup(api, "chatter")
        acked: list[str] = []
        refused = 0

        async def post(token: str, cid: str, text: str) -> int:
            nonlocal refused
            r = await api.post(f"/api/streams/{room}/chat",
                               headers={"Authorization": f"Bearer {token}"},
                               json={"client_id": cid, "text": text})
            if r.status_code == 201:
                acked.append(text)
            else:
                assert r.status_code == 429, r.text
                refused += 1
            return r.status_code

        async def flood(i: int, token: str) -> None:
            for n in range(10):  # 10 flooders x 10 posts at once: 100 offered vs 5/s
                await post(token, f"f{i}-{n}", f"flood {i} {n}")

        async with open_chat_client(ws) as viewer:
            await viewer.join(room)
            async with trio.open_nursery() as nursery:
                for i, token in enumerate(flooders):
                    nursery.start_soon(flood, i, token)
                legit = []
                for n in range(4):
                    text = f"ordinary message {n}"
                    assert await post(chatter, f"c{n}", text) == 201  # heard despite the flood
                    legit.append(text)
                    await trio.sleep(0.25)  # an ordinary pace, slower than room_quiet_s
            seen = await texts_until(viewer, len(acked))
        assert refused > 0  # the flood was limited
        assert all(text in seen for text in legit)
        assert sorted(seen) == sorted(acked)  # delivered exactly what was acked
        history = (await api.get(f"/api/streams/{room}/chat", params={"limit": 100})).json()
        assert sorted(m["text"] for m in history["items"]) == sorted(acked)  # nothing lost
