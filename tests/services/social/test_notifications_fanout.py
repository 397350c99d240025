"""Went-live fan-out under pressure, over the Redis bus as between processes: a client that
stops reading is dropped once its queue is full and holds no one else up.

The test publishes went-live events on the bus itself (as a media process would), many
more than a connection's queue and socket buffers hold.
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx
import psycopg
import pytest
import trio

from streamscale.backends.bus import open_bus
from streamscale.config import MediaConfig
from streamscale.services.social import TOPIC, WentLive
from streamscale.testing import make_config, running_platform
from streamscale.testing.rtmp_session import publish_session

from ..helpers import signed_in
from .sse import open_events

SECRETS_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # one key for both nodes
EVENTS = 1000  # far past the 64 a connection queues plus what a 4 KiB socket buffer holds


async def _user(api: httpx.AsyncClient, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    auth = await signed_in(api, name)
    return auth, (await api.get("/api/users/me", headers=auth)).json()


async def _open_stalled(api_url: str, auth: dict[str, str]) -> tuple[trio.SocketStream,
                                                                      h11.Connection]:
    """A notification connection with a tiny receive buffer that then stops reading."""
    url = urlsplit(api_url)
    assert url.hostname is not None and url.port is not None
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    await sock.connect((url.hostname, url.port))
    stream = trio.SocketStream(sock)
    conn = h11.Connection(h11.CLIENT)
    await stream.send_all(conn.send(h11.Request(
        method="GET", target="/api/me/notifications",
        headers=[("Host", url.netloc), ("Authorization", auth["Authorization"])])))
    await stream.send_all(conn.send(h11.EndOfMessage()))
    seen = b""
    with trio.fail_after(15):
        while b": connected" not in seen:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
            elif isinstance(event, h11.Data):
                seen += bytes(event.data)
    return stream, conn


async def _read_to_end(stream: trio.SocketStream, conn: h11.Connection) -> tuple[bytes, str]:
    """The body, and how it ended: "closed" (the server dropped the connection) or
    "complete" (the response ended normally)."""
    body = b""
    with trio.fail_after(30):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:  # reset
                    return body, "closed"
                if not data:
                    return body, "closed"
                conn.receive_data(data)
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return body, "complete"


@pytest.mark.redis
async def test_a_stalled_client_is_dropped_and_holds_nobody_up(tmp_path: Path) -> None:
    bus_url = f"redis://127.0.0.1:6379/0?prefix=t{secrets.token_hex(4)}"
    base = make_config(tmp_path)
    config = dataclasses.replace(base, chat=dataclasses.replace(base.chat, bus_url=bus_url))
    async with running_platform(config, ("gateway",)) as platform:
        base_url = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as api:
            _, star = await _user(api, "star")
            fast, _ = await _user(api, "fast")
            slow, _ = await _user(api, "slow")
            for fan in (fast, slow):
                assert (await api.put(f"/api/users/{star['id']}/follow", headers=fan)).is_success
            async with open_events(api, fast) as fast_events:
                stalled, conn = await _open_stalled(platform.api_url, slow)
                got: list[str] = []

                async def read_fast() -> None:
                    for _ in range(EVENTS):
                        event = await fast_events.next()
                        assert event is not None
                        got.append(event.data["stream_id"])

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read_fast)
                    bus = await open_bus(bus_url)
                    try:
                        for i in range(EVENTS):
                            await bus.publish(TOPIC, WentLive(
                                stream_id=f"{i:032x}", user_id=star["id"], username="star",
                                display_name="Star", title=f"t{i}", category="chess",
                                started_at=datetime.now(UTC)).encode())
                    finally:
                        await bus.close()
                # The reader kept up: every event, in order, while the other was stalled.
                assert got == [f"{i:032x}" for i in range(EVENTS)]
                # The stalled one was dropped: reading now, it gets what was already in
                # the socket buffers, then the connection closes (EventSource would
                # reconnect with Last-Event-ID).
                body, ended = await _read_to_end(stalled, conn)
                await stalled.aclose()
                delivered = body.count(b"event: live\n")
                print(f"stalled client got {delivered} of {EVENTS} events, then {ended}")
                assert 0 < delivered < EVENTS and ended == "closed"
                # The one that kept up is still connected and still served.
                await bus_publish_one(bus_url, star["id"], "after")
                event = await fast_events.next()
                assert event is not None and event.data["title"] == "after"


async def bus_publish_one(bus_url: str, user_id: str, title: str) -> None:
    bus = await open_bus(bus_url)
    try:
        await bus.publish(TOPIC, WentLive(
            stream_id="f" * 32, user_id=user_id, username="star", display_name="Star",
            title=title, category="chess", started_at=datetime.now(UTC)).encode())
    finally:
        await bus.close()


@pytest.mark.redis
async def test_a_stalled_client_does_not_hold_up_shutdown(tmp_path: Path) -> None:
    """A client that stops reading with its socket buffers full and its queue not (yet)
    full: the gateway's shutdown must not wait for it (hypercorn's writes are shielded)."""
    bus_url = f"redis://127.0.0.1:6379/0?prefix=t{secrets.token_hex(4)}"
    base = make_config(tmp_path)
    config = dataclasses.replace(base, chat=dataclasses.replace(base.chat, bus_url=bus_url))
    with trio.fail_after(60):
        async with running_platform(config, ("gateway",)) as platform:
            base_url = platform.api_url.removesuffix("/api")
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as api:
                _, star = await _user(api, "star")
                slow, _ = await _user(api, "slow")
                reader, _ = await _user(api, "reader")
                for fan in (slow, reader):
                    r = await api.put(f"/api/users/{star['id']}/follow", headers=fan)
                    assert r.is_success
                stalled, _conn = await _open_stalled(platform.api_url, slow)
                async with open_events(api, reader) as events:
                    for i in range(60):  # about what the buffers hold: the writer parks
                        await bus_publish_one(bus_url, star["id"], f"t{i}")
                    for i in range(60):  # delivered in order to the one that reads
                        event = await events.next()
                        assert event is not None and event.data["title"] == f"t{i}"
            # leaving the platform shuts it down, the stalled client still connected
        data = await stalled.receive_some(1 << 20)
        assert data  # what was buffered; the connection was closed behind it
        await stalled.aclose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"social_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            yield ("postgresql+psycopg://postgres@127.0.0.1:5432/test"
                   f"?options=-csearch_path%3D{schema}")
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.redis
@pytest.mark.postgres
async def test_each_gateway_tells_its_own_followers(tmp_path: Path, postgres_url: str) -> None:
    """Two platform nodes over one database and one Redis: the stream goes live on node
    one's ingest; a follower connected to each node's gateway is told, by that gateway."""
    bus_url = f"redis://127.0.0.1:6379/0?prefix=t{secrets.token_hex(4)}"
    base = make_config(tmp_path, storage_url=postgres_url)

    def node(name: str) -> Any:
        return dataclasses.replace(
            base, data_dir=tmp_path / name,
            auth=dataclasses.replace(base.auth, secrets_key=SECRETS_KEY),
            chat=dataclasses.replace(base.chat, bus_url=bus_url),
            media=MediaConfig(rtmp_port=0, ladder="source", reconnect_grace_s=30.0))

    async with running_platform(node("one"), ("gateway", "media")) as one, \
            running_platform(node("two"), ("gateway",)) as two, \
            httpx.AsyncClient(base_url=one.api_url.removesuffix("/api"), timeout=30) as api1, \
            httpx.AsyncClient(base_url=two.api_url.removesuffix("/api"), timeout=30) as api2:
        caster, star = await _user(api1, "caster")
        fan1, _ = await _user(api1, "fanone")
        fan2 = await signed_in(api2, "fantwo")
        for fan, api in ((fan1, api1), (fan2, api2)):
            assert (await api.put(f"/api/users/{star['id']}/follow", headers=fan)).is_success
        r = await api1.post("/api/streams/start", headers=caster,
                            json={"title": "two nodes", "category": "chess"})
        stream_id, key = r.json()["stream"]["id"], r.json()["stream_key"]
        rtmp = urlsplit(one.url("media", "rtmp"))
        assert rtmp.hostname is not None and rtmp.port is not None
        async with open_events(api1, fan1) as events1, open_events(api2, fan2) as events2, \
                await publish_session(rtmp.hostname, rtmp.port, key):
            for events in (events1, events2):
                event = await events.next()
                assert event is not None and event.data["stream_id"] == stream_id
                assert event.data["title"] == "two nodes"
