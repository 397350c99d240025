"""Process faults: SIGKILL and restart of a real `streamscale up` (nothing acked lost), an
RTMP reconnect storm on the real ingest, the platform over a slowed PostgreSQL."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import trio

from chaos.process import ServiceProcess, free_port, reconnect_storm, slow_database
from streamscale.config import MediaConfig
from streamscale.testing import make_config, running_platform

pytestmark = pytest.mark.slow

_CHEAP = {"STREAMSCALE_AUTH__PASSWORD_MEMORY_KIB": "8192",
          "STREAMSCALE_AUTH__PASSWORD_TIME_COST": "1"}


async def _signup(api: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await api.post("/api/users/register", json={
        "username": name, "email": f"{name}@example.com", "password": "pass word 1"})
    assert r.status_code == 201, r.text
    login = await api.post("/api/users/login", json={"login": name, "password": "pass word 1"})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_sigkill_and_restart_loses_nothing_acked(tmp_path: Path,
                                                       nursery: trio.Nursery) -> None:
    port = free_port()
    service = ServiceProcess("gateway", tmp_path / "var", env={
        **_CHEAP, "STREAMSCALE_GATEWAY__PORT": str(port)})
    urls = await service.start(nursery)
    assert urls["api"] == f"http://127.0.0.1:{port}/api"
    acked: list[str] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
        auth = await _signup(api, "caster")
        for i in range(5):
            r = await api.post("/api/streams/start", headers=auth,
                               json={"title": f"s{i}", "category": "test"})
            if r.is_success:  # answered: acked
                acked.append(r.json()["stream"]["id"])
            await api.post(f"/api/streams/{acked[-1]}/stop", headers=auth)
        service.kill()
        assert await service.wait_dead() == -9
        with pytest.raises(httpx.ConnectError):
            await api.get("/api/streams")
        assert await service.restart(nursery) == urls  # same address after the restart
        for stream_id in acked:
            r = await api.get(f"/api/streams/{stream_id}")
            assert r.status_code == 200 and r.json()["status"] == "ended"
    assert len(acked) == 5 and service.starts == 2 and service.kills == 1
    await service.stop()
    assert not service.running


async def test_reconnect_storm_on_the_real_ingest(tmp_path: Path) -> None:
    config = dataclasses.replace(make_config(tmp_path), media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=5.0, key_check_s=0.25))
    async with running_platform(config, ("gateway", "media")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=10) as api:
        auth = await _signup(api, "caster")
        keys = []
        for i in range(6):
            r = await api.post("/api/streams/start", headers=auth,
                               json={"title": f"s{i}", "category": "test"})
            keys.append(r.json()["stream_key"])
        result = await reconnect_storm(platform.url("media", "rtmp"), keys, rounds=4)
        # every attempt was answered (accepted, or refused while the dropped session was
        # still held); nothing hung or broke; every key published at least once
        assert result.failed == 0, result
        assert result.accepted + result.refused == 24
        assert result.accepted >= 6
        # after the storm, each stream takes its publisher again
        settled = await reconnect_storm(platform.url("media", "rtmp"), keys, rounds=1)
        assert settled.accepted + settled.refused == 6 and settled.failed == 0


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    schema = f"chaos_{secrets.token_hex(4)}"
    try:
        conn = psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is needed (postgres marker): {exc}")
    with conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            yield (f"postgresql+psycopg://postgres@127.0.0.1:5432/test"
                   f"?options=-csearch_path%3D{schema}")
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
async def test_platform_over_a_slowed_database(tmp_path: Path, postgres_schema_url: str,
                                               nursery: trio.Nursery) -> None:
    proxy, url = await slow_database(nursery, postgres_schema_url, latency_s=0.05)
    assert f"127.0.0.1:{proxy.port}" in url and "search_path" in url
    async with running_platform(make_config(tmp_path, storage_url=url)) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as api:
        auth = await _signup(api, "slowpoke")  # every query pays the latency, and works
        proxy.down.latency_s = 0.2  # slower at runtime
        r = await api.get("/api/users/me", headers=auth)
        assert r.status_code == 200 and r.json()["username"] == "slowpoke"
    assert proxy.stats.connections >= 1 and proxy.stats.bytes_down > 0
    with pytest.raises(ValueError, match="explicit host and port"):
        await slow_database(nursery, "postgresql+psycopg://db/test", latency_s=1)
