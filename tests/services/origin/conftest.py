from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from streamscale.services.origin import Limits, MediaRegistry, serve_origin


@dataclass
class Origin:
    url: str
    registry: MediaRegistry
    shutdown: trio.Event
    recordings: Path
    done: trio.Event  # set when serve_origin has returned


@asynccontextmanager
async def open_origin(recordings: Path, limits: Limits | None = None) -> AsyncIterator[Origin]:
    registry, shutdown, done = MediaRegistry(), trio.Event(), trio.Event()

    async def serve(*, task_status: trio.TaskStatus[str]) -> None:
        try:
            await serve_origin(registry, recordings, host="127.0.0.1", port=0, limits=limits,
                               shutdown=shutdown, task_status=task_status)
        finally:
            done.set()

    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve))
        try:
            yield Origin(url, registry, shutdown, recordings, done)
        finally:
            shutdown.set()


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    async with open_origin(tmp_path / "recordings") as running:
        yield running


@pytest.fixture
async def client(origin: Origin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=origin.url, timeout=30) as http:
        yield http


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """pytest-trio's autojump clock, jumping only after 20 ms of real quiet: these tests
    use real loopback sockets, whose bytes in flight must land before mock time moves."""
    return trio.testing.MockClock(autojump_threshold=0.02)
