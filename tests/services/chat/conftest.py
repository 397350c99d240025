from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio
import trio.testing

from streamscale.services.chat.fanout import ChatGateway, ChatLimits, ChatRejected, serve_chat

TOKENS = {"tok-ann": "ann", "tok-bob": "bob", "tok-eve": "eve"}


@dataclass
class FakePipeline:
    """What the real pipeline does through the bus, in-process: persist, then broadcast."""

    gateway: ChatGateway | None = None
    posted: list[tuple[str, str, str, str]] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    reject: Callable[[str, str], ChatRejected | None] = lambda user, text: None
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _seen: dict[tuple[str, str], str] = field(default_factory=dict)

    async def authenticate(self, token: str) -> str | None:
        await trio.lowlevel.checkpoint()
        return TOKENS.get(token)

    async def on_post(self, user: str, room: str, client_id: str, text: str) -> str:
        await trio.lowlevel.checkpoint()
        if (rejection := self.reject(user, text)) is not None:
            raise rejection
        if (user, client_id) in self._seen:  # a retry: same ack, not delivered twice
            return self._seen[user, client_id]
        message_id = f"m{next(self._ids)}"
        self._seen[user, client_id] = message_id
        self.posted.append((user, room, client_id, text))
        assert self.gateway is not None
        self.gateway.deliver(room, [{"id": message_id, "user": user, "text": text,
                                     "ts": trio.current_time()}])
        return message_id


@dataclass
class Chat:
    url: str
    gateway: ChatGateway
    pipeline: FakePipeline
    shutdown: trio.Event


@asynccontextmanager
async def open_chat(limits: ChatLimits | None = None) -> AsyncIterator[Chat]:
    pipeline = FakePipeline()
    gateway = ChatGateway(
        on_post=pipeline.on_post, authenticate=pipeline.authenticate,
        on_join=pipeline.joined.append, on_leave=pipeline.left.append,
        limits=limits or ChatLimits(),
    )
    pipeline.gateway = gateway
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_chat, gateway, host="127.0.0.1", port=0,
                                          shutdown=shutdown))
        yield Chat(url, gateway, pipeline, shutdown)
        shutdown.set()


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """pytest-trio's autojump clock, but jumping only after 20 ms of real quiet: these
    tests use real loopback sockets, and bytes in flight must land before mock time moves
    (with a threshold of 0 a loaded machine reorders them: CI once hung here)."""
    return trio.testing.MockClock(autojump_threshold=0.02)


@pytest.fixture
async def chat(autojump_clock: trio.testing.MockClock) -> AsyncIterator[Chat]:
    async with open_chat() as running:
        yield running
