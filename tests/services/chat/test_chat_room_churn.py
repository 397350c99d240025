"""Readers join and leave a room while a writer posts, through the real platform (gateway,
bus, workers, store) with the `websockets` library's client: every acked message reaches
every reader that was in the room when it was posted, in order, and nothing posted before
a reader arrived is shown to it as new.

A load run whose chat sessions came and went saw a room's first messages arrive 3-11 s
late: each time the room emptied and filled again, the gateway "caught the room up" from
history and replayed its last 20 messages to whoever had just joined.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import trio
from websockets.sync.client import ClientConnection, connect

from streamscale.config import Config
from streamscale.testing import make_config

from .test_chat_e2e import platform_api, signup, start_stream

RECV_TIMEOUT_S = 30.0  # a failure bound for a frame that never comes, not a wait


def roomy_config(tmp_path: Path) -> Config:
    """Flood limits out of the way: one writer posts and moves a lot in a short time."""
    config = make_config(tmp_path)
    return dataclasses.replace(config, chat=dataclasses.replace(
        config.chat, user_rate_per_10s=1000, frames_per_s=1000.0, frames_burst=1000))


class Client:
    """One `websockets` (synchronous) connection, driven from trio through a worker thread.

    Records the text of every message that arrives in a batch, in arrival order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.texts: list[str] = []

    @classmethod
    async def open(cls, url: str) -> Client:
        return cls(await trio.to_thread.run_sync(lambda: connect(
            url, compression=None, ping_interval=None, open_timeout=10).__enter__()))

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.ws.close)

    async def send(self, frame: dict[str, Any]) -> None:
        await trio.to_thread.run_sync(self.ws.send, json.dumps({"v": 1, **frame}))

    async def until(self, kind: str, **fields: object) -> dict[str, Any]:
        """Read frames (recording batches) until one of `kind` (any: "") with these
        fields."""
        while True:
            frame: dict[str, Any] = json.loads(
                await trio.to_thread.run_sync(self.ws.recv, RECV_TIMEOUT_S))
            if frame["type"] == "batch":
                self.texts.extend(m["text"] for m in frame["messages"])
            if kind in ("", frame["type"]) and all(
                    frame.get(k) == v for k, v in fields.items()):
                return frame

    async def until_text(self, text: str) -> None:
        while text not in self.texts:
            await self.until("batch")

    async def join(self, room: str, token: str | None = None) -> None:
        await self.send({"type": "join", "room": room} | ({"token": token} if token else {}))
        await self.until("joined")

    async def leave(self, marker: str) -> None:
        """Leave, and know the gateway has: frames are handled in order, so the pong
        answering the ping after the `leave` comes after it took effect."""
        await self.send({"type": "leave"})
        await self.send({"type": "ping", "id": marker})
        await self.until("pong", id=marker)

    async def post(self, client_id: str, text: str) -> None:
        await self.send({"type": "send", "id": client_id, "text": text})
        while (frame := await self.until("", id=client_id))["type"] not in ("ack", "error"):
            pass
        assert frame["type"] == "ack" and frame.get("status") == "visible", frame


async def test_a_reader_joining_an_emptied_room_sees_only_what_is_posted_after(
    tmp_path: Path,
) -> None:
    async with platform_api(roomy_config(tmp_path)) as (api, url):
        _, token = await signup(api, "wendy")
        room = await start_stream(api, token)
        writer, first, later = [await Client.open(url) for _ in range(3)]
        try:
            await first.join(room)
            await writer.join(room, token)
            await writer.post("m0", "while the first reader was in")
            await first.until_text("while the first reader was in")
            await first.leave("l1")
            await writer.leave("l2")  # the room is empty now: the gateway unsubscribes it
            await later.join(room)  # the room's first viewer again: subscribed anew
            await writer.join(room, token)
            await writer.post("m1", "after the later reader joined")
            await later.until_text("after the later reader joined")
            assert later.texts == ["after the later reader joined"]
            assert first.texts == ["while the first reader was in"]
        finally:
            for client in (writer, first, later):
                await client.close()


# Who is in the room in each round (reader index -> in?), the writer posting once per round.
# Rounds 3, 6 and 9 start with an empty room (everyone left at the end of the round
# before), so the room is unsubscribed and subscribed again with readers arriving.
ROUNDS: list[set[int]] = [
    {0}, {0, 1}, {1, 2}, {3}, {0, 3}, {0, 1, 2, 3}, {2}, {1, 2}, {1}, {0, 3}, {0, 1, 3},
    {3},
]
EMPTY_BEFORE = {3, 6, 9}


async def test_readers_coming_and_going_get_every_message_of_their_stay_in_order(
    tmp_path: Path,
) -> None:
    async with platform_api(roomy_config(tmp_path)) as (api, url):
        _, token = await signup(api, "wendy")
        room = await start_stream(api, token)
        writer = await Client.open(url)
        readers = [await Client.open(url) for _ in range(4)]
        expected: list[list[str]] = [[] for _ in readers]  # what each reader's stays saw
        inside: set[int] = set()
        writer_in = False
        pings = iter(range(1_000_000))
        written: list[str] = []
        try:
            for number, members in enumerate(ROUNDS):
                if number in EMPTY_BEFORE:
                    for i in sorted(inside):
                        await readers[i].leave(f"p{next(pings)}")
                    inside.clear()
                    if writer_in:
                        await writer.leave(f"p{next(pings)}")
                        writer_in = False
                for i in sorted(members - inside):
                    await readers[i].join(room)
                for i in sorted(inside - members):
                    await readers[i].leave(f"p{next(pings)}")
                inside = set(members)
                if not writer_in:
                    await writer.join(room, token)
                    writer_in = True
                text = f"round {number}"
                await writer.post(f"c{number}", text)
                written.append(text)
                await writer.until_text(text)
                for i in sorted(inside):
                    expected[i].append(text)
                    # It must come before the next round's message is even posted.
                    await readers[i].until_text(text)
            for i, reader in enumerate(readers):
                assert reader.texts == expected[i], f"reader {i}"
            assert writer.texts == written
        finally:
            for client in (writer, *readers):
                await client.close()
