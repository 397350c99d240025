"""Ingest limits against hostile clients on real sockets: a connection that floods unfinished
messages is cut off, a client past its connection limit (per IP, or the ingest's total) is
closed at once, counted and logged once, and an ffmpeg publisher goes live meanwhile.

Hostile clients use other loopback source addresses (127.0.0.2, ...) to act as other IPs;
ffmpeg publishes from 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from streamscale.backends.storage import open_store
from streamscale.config import ConfigError, MediaConfig
from streamscale.protocols import rtmp
from streamscale.services.media import ingest as ingest_module
from streamscale.services.media.ingest import Feed, PublishRefused, RtmpIngest, client_key
from streamscale.services.streaming import StreamService
from streamscale.testing import make_config, running_platform
from streamscale.testing.rtmp_abuse import (
    Flood,
    flood_then_connect,
    handshake,
    refused_at_once,
)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
INGEST_LOGGER = "streamscale.services.media.ingest"


@pytest.fixture(autouse=True)
def patient_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile connections that never publish stay open for the whole test (however slow
    the machine), and every refusal after the first in a test is one interval later."""
    monkeypatch.setattr(ingest_module, "HANDSHAKE_TIMEOUT_S", 3600.0)
    monkeypatch.setattr(ingest_module, "REFUSAL_LOG_INTERVAL_S", 1e9)


def refusal_lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == INGEST_LOGGER and needle in r.getMessage()]


# -- configuration ------------------------------------------------------------------------

def test_config_defaults_are_the_layer_defaults() -> None:
    media = MediaConfig()
    assert media.rtmp_max_buffered_bytes == rtmp.DEFAULT_MAX_BUFFERED_BYTES
    assert media.rtmp_max_buffered_bytes_unpublished == rtmp.DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED
    assert media.rtmp_max_connections == ingest_module.DEFAULT_MAX_CONNECTIONS
    assert media.rtmp_max_connections_per_ip == ingest_module.DEFAULT_MAX_CONNECTIONS_PER_IP


@pytest.mark.parametrize(("key", "value"), [
    ("rtmp_max_connections", 0), ("rtmp_max_connections_per_ip", 0),
    ("rtmp_max_buffered_bytes", 4095), ("rtmp_max_buffered_bytes_unpublished", 100)])
def test_config_rejects_limits_that_cannot_work(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=key):
        MediaConfig(**{key: value})


@pytest.mark.parametrize(("host", "key"), [
    ("127.0.0.2", "127.0.0.2"),
    ("::ffff:10.1.2.3", "10.1.2.3"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
])
def test_one_client_is_an_ipv4_address_or_an_ipv6_64(host: str, key: str) -> None:
    assert client_key(host) == key


# -- the ingest alone: limits, counters, logs ---------------------------------------------

class NoHub:
    def publish(self, stream_id: str) -> AbstractAsyncContextManager[Feed]:
        raise PublishRefused("nobody publishes in this test")


@pytest.fixture
async def small_ingest(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[
        tuple[RtmpIngest, int]]:
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ingest = RtmpIngest(store, StreamService(store, make_config(tmp_path)), NoHub(),
                        max_connections=5, max_connections_per_ip=3)
    listeners = await nursery.start(ingest.serve, "127.0.0.1", 0)
    yield ingest, listeners[0].socket.getsockname()[1]
    nursery.cancel_scope.cancel()
    await store.close()


async def test_connection_limits_close_at_once_count_and_log_once(
    small_ingest: tuple[RtmpIngest, int], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest, port = small_ingest
    held = []
    for _ in range(3):
        sock = await handshake("127.0.0.1", port, local_address="127.0.0.2")
        assert sock is not None  # answered: accepted
        held.append(sock)
    for _ in range(3):  # the per-IP limit: closed without a handshake answer
        assert await refused_at_once("127.0.0.1", port, local_address="127.0.0.2")
    assert ingest.refused_per_ip_limit == 3
    assert len(refusal_lines(caplog, "too many connections from 127.0.0.2")) == 1

    for _ in range(2):  # another client still gets in, up to the total
        sock = await handshake("127.0.0.1", port, local_address="127.0.0.3")
        assert sock is not None
        held.append(sock)
    assert ingest.connections == 5
    assert await refused_at_once("127.0.0.1", port, local_address="127.0.0.4")
    assert await refused_at_once("127.0.0.1", port, local_address="127.0.0.4")
    assert ingest.refused_total_limit == 2
    assert len(refusal_lines(caplog, "the ingest is full")) == 1

    monkeypatch.setattr(ingest_module, "REFUSAL_LOG_INTERVAL_S", 0.0)  # the interval is over
    assert await refused_at_once("127.0.0.1", port, local_address="127.0.0.4")
    (again,) = refusal_lines(caplog, "the ingest is full")[1:]
    assert "1 more closed since the last" in again

    for sock in held:  # slots free up once clients leave
        await sock.aclose()
    with trio.fail_after(30):
        # Until the server has seen the closes (loopback FINs may wait for a softirq).
        while (sock := await handshake(  # noqa: ASYNC110 - polls the server over sockets
                "127.0.0.1", port, local_address="127.0.0.2")) is None:
            await trio.sleep(0.05)
    await sock.aclose()


async def test_a_flooding_connection_is_cut_off_and_counted(
    small_ingest: tuple[RtmpIngest, int],
) -> None:
    ingest, port = small_ingest
    plan = Flood(streams=60, announce_bytes=rtmp.DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED,
                 per_stream_bytes=32 * 1024)
    _, answer = await flood_then_connect("127.0.0.1", port, plan, local_address="127.0.0.2")
    assert b"_result" not in answer  # the connect after the flood never reached a session
    assert ingest.protocol_errors == 1


# -- the whole platform, ffmpeg publishing through an attack ------------------------------

def _publish_cmd(url: str, seconds: float) -> list[str]:
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "15",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url]


@pytest.mark.slow
async def test_hostile_clients_are_cut_off_while_ffmpeg_goes_live(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=INGEST_LOGGER)
    config = make_config(tmp_path)
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, ladder="source", segment_s=1.0, part_s=0.25,
        rtmp_max_connections_per_ip=4))
    async with running_platform(config, ("gateway", "media", "origin")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"), timeout=30) as api:
        await api.post("/api/users/register", json={
            "username": "caster", "email": "c@example.com", "password": "pass word 1"})
        token = (await api.post("/api/users/login", json={
            "login": "caster", "password": "pass word 1"})).json()["access_token"]
        started = (await api.post("/api/streams/start", headers={
            "Authorization": f"Bearer {token}"}, json={"title": "t", "category": "c"})).json()
        stream_id, key = started["stream"]["id"], started["stream_key"]
        rtmp_url = platform.url("media", "rtmp")
        host, port_text = rtmp_url.removeprefix("rtmp://").split("/")[0].split(":")
        port = int(port_text)

        # Too many connections from one IP: four are held, the rest closed at once.
        held = [await handshake(host, port, local_address="127.0.0.3") for _ in range(4)]
        assert all(sock is not None for sock in held)
        assert [await refused_at_once(host, port, local_address="127.0.0.3")
                for _ in range(3)] == [True, True, True]

        floods = [  # 8 MiB messages on 62 chunk streams; messages just under the cap
            Flood(streams=62, announce_bytes=8 * 1024 * 1024 - 1, per_stream_bytes=256 * 1024),
            Flood(streams=62, announce_bytes=65536, per_stream_bytes=60_000),
        ]
        answers: list[bytes] = []

        async def attack(plan: Flood, source: str) -> None:
            answers.append((await flood_then_connect(host, port, plan, local_address=source))[1])

        async with trio.open_nursery() as nursery:
            publisher = await nursery.start(partial(
                trio.run_process, _publish_cmd(f"{rtmp_url}/{key}", 6),
                stderr=subprocess.DEVNULL))
            for i, plan in enumerate(floods * 3):
                nursery.start_soon(attack, plan, f"127.0.0.{10 + i}")

            async def live_with_segments() -> bool:
                if (await api.get(f"/api/streams/{stream_id}")).json()["status"] != "live":
                    return False
                async with httpx.AsyncClient() as origin:
                    r = await origin.get(
                        f"{platform.url('origin', 'hls')}/live/{stream_id}/source/index.m3u8")
                return r.status_code == 200 and "#EXTINF" in r.text

            with trio.fail_after(60):
                while not await live_with_segments():  # noqa: ASYNC110 - polls over HTTP
                    await trio.sleep(0.1)
            await publisher.wait()
        assert publisher.returncode == 0
        for sock in held:
            assert sock is not None
            await sock.aclose()

    assert len(answers) == 6 and not any(b"_result" in a for a in answers)
    errors = refusal_lines(caplog, "protocol error")
    assert sum("exceeds the 65536-byte limit" in e for e in errors) == 3  # refused at a header
    assert sum("over the 65536-byte limit before publishing" in e for e in errors) == 3
    assert len(refusal_lines(caplog, "too many connections from 127.0.0.3")) == 1
