"""Fixtures for the edge tests: an origin that counts what reaches it, edges in front."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio
import trio.testing

from streamscale.config import EdgeConfig
from streamscale.services.cdn.edge import Edge, serve_edge
from streamscale.services.cdn.records import UsageRecorder
from streamscale.services.lean_http import Handler, Holds, HTTPServer, Limits, Reply, Request
from streamscale.services.origin import MediaRegistry
from streamscale.services.origin._routes import OriginRoutes
from streamscale.testing.hls_validate import validate_all

from ..origin.streams import SERVED_PLAYLISTS

# short drains: a test that leaves requests parked does not wait the default 5 s grace
LIMITS = Limits(shutdown_grace_s=0.5)


@dataclass
class Counting:
    """Wraps the origin's handler: every request that reaches the origin, by target."""

    inner: Handler
    counts: Counter[bytes] = field(default_factory=Counter)
    edge_headers: Counter[bytes | None] = field(default_factory=Counter)
    # every header name the origin saw (viewer-specific ones must not be forwarded)
    header_names: set[bytes] = field(default_factory=set)

    async def __call__(self, request: Request, holds: Holds) -> Reply:
        self.counts[request.target] += 1
        self.edge_headers[request.header(b"x-streamscale-edge")] += 1
        self.header_names.update(name for name, _ in request.headers)
        return await self.inner(request, holds)


@dataclass
class CountingOrigin:
    url: str
    registry: MediaRegistry
    routes: Counting
    server: HTTPServer

    @property
    def counts(self) -> Counter[bytes]:
        return self.routes.counts


@asynccontextmanager
async def open_counting_origin(
    handler: Handler | None = None, limits: Limits = LIMITS
) -> AsyncIterator[CountingOrigin]:
    registry = MediaRegistry()
    routes = Counting(handler or OriginRoutes(registry, None))
    server = HTTPServer(routes, limits)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(
            server.serve, host="127.0.0.1", port=0, shutdown=shutdown))
        port = listeners[0].socket.getsockname()[1]
        try:
            yield CountingOrigin(f"http://127.0.0.1:{port}", registry, routes, server)
        finally:
            shutdown.set()


@asynccontextmanager
async def open_edge(
    name: str, upstream_url: str, *, cdn: str = "a", cache_mb: int = 64,
    recorder: UsageRecorder | None = None, limits: Limits = LIMITS,
    shutdown: trio.Event | None = None,
) -> AsyncIterator[Edge]:
    """An edge on a free port; leaving the block shuts it down (or set `shutdown`)."""
    shutdown = shutdown if shutdown is not None else trio.Event()
    async with trio.open_nursery() as nursery:
        edge: Edge = await nursery.start(partial(
            serve_edge, EdgeConfig(name=name, cdn=cdn, cache_mb=cache_mb),
            upstream_url=upstream_url, recorder=recorder, limits=limits, shutdown=shutdown))
        try:
            yield edge
        finally:
            shutdown.set()


@pytest.fixture
async def origin() -> AsyncIterator[CountingOrigin]:
    async with open_counting_origin() as running:
        yield running


@pytest.fixture
async def edge(origin: CountingOrigin) -> AsyncIterator[Edge]:
    async with open_edge("a1", origin.url) as running:
        yield running


async def parked(edge: Edge, n: int) -> None:
    """Wait until `n` requests are parked on upstream fetches at `edge` (no sleeps)."""
    with trio.fail_after(10):
        while edge.waiting() < n:
            await trio.testing.wait_all_tasks_blocked()


async def parked_at_origin(origin: CountingOrigin, n: int, stream_id: str = "s1") -> None:
    with trio.fail_after(10):
        while origin.registry.waiting(stream_id) < n:
            await trio.testing.wait_all_tasks_blocked()


@pytest.fixture(autouse=True)
def strict_playlists() -> Iterator[list[tuple[str, bytes]]]:
    """Every playlist a test read through RawClient or the recording client passes the
    strict parser (hls-parser, strict mode) after the test (each distinct body once)."""
    SERVED_PLAYLISTS.clear()
    yield SERVED_PLAYLISTS
    distinct = {body: label for label, body in SERVED_PLAYLISTS}
    SERVED_PLAYLISTS.clear()
    validate_all([(label, body) for body, label in distinct.items()])


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """Jump only after 20 ms of real quiet: loopback bytes in flight land first."""
    return trio.testing.MockClock(autojump_threshold=0.02)
