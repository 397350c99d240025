from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from streamscale.services.origin import Limits, MediaRegistry, serve_origin
from streamscale.testing.hls_validate import validate_all

from .streams import SERVED_PLAYLISTS, served


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


async def _record_playlist(response: httpx.Response) -> None:
    await response.aread()
    content_type = response.headers.get("content-type", "").encode()
    served(str(response.request.url), response.status_code, content_type, response.content)


def origin_client(base_url: str) -> httpx.AsyncClient:
    """An HTTP client whose playlist answers all go to the strict validator."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=30, event_hooks={"response": [_record_playlist]}
    )


@pytest.fixture(autouse=True)
def strict_playlists() -> Iterator[list[tuple[str, bytes]]]:
    """After each test, every playlist it was served passes the strict parser (hls-parser
    in strict mode, one Node process for the session); yields them for tests to count."""
    SERVED_PLAYLISTS.clear()
    yield SERVED_PLAYLISTS
    batch = list(SERVED_PLAYLISTS)
    SERVED_PLAYLISTS.clear()
    validate_all(batch)


@pytest.fixture
async def client(origin: Origin) -> AsyncIterator[httpx.AsyncClient]:
    async with origin_client(origin.url) as http:
        yield http


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """pytest-trio's autojump clock, jumping only after 20 ms of real quiet: these tests
    use real loopback sockets, whose bytes in flight must land before mock time moves."""
    return trio.testing.MockClock(autojump_threshold=0.02)
