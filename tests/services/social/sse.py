"""A server-sent events reader over httpx's streaming API (what EventSource does)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio


@dataclass
class Event:
    event: str = "message"
    id: str | None = None
    data_lines: list[str] = field(default_factory=list)

    @property
    def data(self) -> Any:
        return json.loads("\n".join(self.data_lines))


class EventStream:
    """Events of one open text/event-stream response; comments are kept apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self, *, timeout_s: float = 15) -> Event | None:
        """The next event (None at the end of the stream), within a deadline."""
        with trio.fail_after(timeout_s):
            event = Event()
            async for line in self._lines:
                if line == "":
                    if event.data_lines:
                        return event
                    event = Event()
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        event.event = value
                    elif name == "id":
                        event.id = value
                    elif name == "data":
                        event.data_lines.append(value)
            return None

    async def until_comment(self, text: str, *, timeout_s: float = 15) -> None:
        """Read until the comment `text` (e.g. "connected": the server has registered us)."""
        with trio.fail_after(timeout_s):
            async for line in self._lines:
                if line.startswith(":") and line[1:].strip() == text:
                    return
        raise AssertionError(f"the stream ended before ': {text}'")


@asynccontextmanager
async def open_events(api: httpx.AsyncClient, auth: dict[str, str], *,
                      last_event_id: str | None = None) -> AsyncIterator[EventStream]:
    """GET /api/me/notifications, returning once the server has registered the client."""
    headers = dict(auth)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with api.stream("GET", "/api/me/notifications", headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        await stream.until_comment("connected")
        yield stream
