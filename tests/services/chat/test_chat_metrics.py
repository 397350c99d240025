"""Chat's counters on the gateway's `/metrics` move by what two WebSocket clients did."""

from __future__ import annotations

from pathlib import Path

from streamscale.testing import make_config
from streamscale.testing.metrics import scrape
from streamscale.testing.ws_client import open_chat_client

from .test_chat_e2e import platform_api, signup, start_stream, texts_until

POSTS = 3


async def test_connections_messages_and_deliveries_are_counted(tmp_path: Path) -> None:
    async with platform_api(make_config(tmp_path)) as (api, ws):
        _, alice = await signup(api, "alice")
        room = await start_stream(api, alice)
        before = await scrape(api, "/metrics")
        async with open_chat_client(ws) as a, open_chat_client(ws) as reader:
            await a.join(room, alice)
            await reader.join(room)
            for i in range(POSTS):
                assert (await a.post(f"a{i}", f"hello {i}"))["type"] == "ack"
            assert len(await texts_until(reader, POSTS)) == POSTS
            assert len(await texts_until(a, POSTS)) == POSTS
            during = await scrape(api, "/metrics")

    def moved(name: str) -> float:
        return during.value(name) - before.value(name)

    assert during.value("streamscale_chat_connections") == 2
    assert during.value("streamscale_chat_rooms") == 1
    assert moved("streamscale_chat_connections_accepted_total") == 2
    assert moved("streamscale_chat_messages_accepted_total") == POSTS
    assert moved("streamscale_chat_messages_blocked_total") == 0
    assert moved("streamscale_chat_messages_held_total") == 0
    assert moved("streamscale_chat_deliveries_total") == POSTS * 2  # each to both members
    assert 1 <= moved("streamscale_chat_frames_sent_total") <= POSTS
    assert moved("streamscale_chat_slow_reader_drops_total") == 0
