"""`streamscale up` as a user runs it: a real process, a scripted flow, a clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from streamscale.cli import main as cli_main
from streamscale.testing.up import STREAMSCALE, up_env
from streamscale.testing.up import streamscale_up as _up


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return up_env(tmp_path / "var", **extra)


@asynccontextmanager
async def streamscale_up(
    tmp_path: Path, *args: str, command: tuple[str, ...] = (STREAMSCALE,)
) -> AsyncIterator[tuple[trio.Process, dict[str, str], list[str]]]:
    async with _up(tmp_path, *args, command=command) as started:
        yield started


async def _drain(proc: trio.Process) -> str:
    assert proc.stdout is not None
    out = b""
    while chunk := await proc.stdout.receive_some():
        out += chunk
    return out.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_up_flow_and_graceful_shutdown(tmp_path: Path, signum: signal.Signals) -> None:
    async with streamscale_up(tmp_path) as (proc, urls, lines):
        assert lines[0].startswith("streamscale ")
        assert urls["openapi"].endswith("/api/openapi.json")
        assert urls["rtmp"].startswith("rtmp://") and urls["hls"].startswith("http://")
        base = urls["api"].removesuffix("/api")
        async with httpx.AsyncClient(base_url=base) as api:
            r = await api.post("/api/users/register", json={
                "username": "streamer", "email": "s@example.com", "password": "pass word 1"})
            assert r.status_code == 201
            user_id = r.json()["user"]["id"]
            r = await api.post("/api/users/register", json={
                "username": "viewer", "email": "v@example.com", "password": "pass word 2"})
            assert r.status_code == 201
            tok = (await api.post("/api/users/login", json={
                "login": "streamer", "password": "pass word 1"})).json()["access_token"]
            auth = {"Authorization": f"Bearer {tok}"}
            r = await api.patch("/api/users/me", headers=auth, json={"bio": "speedruns"})
            assert r.json()["bio"] == "speedruns"
            r = await api.post("/api/streams/start", headers=auth,
                               json={"title": "Live!", "category": "Gaming"})
            assert r.status_code == 201
            stream_id = r.json()["stream"]["id"]
            assert (await api.get(f"/api/streams/{stream_id}")).json()["status"] == "created"
            r = await api.post(f"/api/streams/{stream_id}/key", headers=auth)
            assert r.json()["stream_key"].startswith("live_")
            assert (await api.post(f"/api/streams/{stream_id}/stop", headers=auth)
                    ).json()["status"] == "ended"
            vtok = (await api.post("/api/users/login", json={
                "login": "viewer", "password": "pass word 2"})).json()["access_token"]
            vauth = {"Authorization": f"Bearer {vtok}"}
            r = await api.put(f"/api/users/{user_id}/follow", headers=vauth)
            assert r.json()["followers"] == 1
            # failure cases
            r = await api.post(f"/api/streams/{stream_id}/stop", headers=vauth)
            assert r.status_code == 403
            r = await api.post("/api/streams/start", json={"title": "x", "category": "y"})
            assert r.status_code == 401
            r = await api.post("/api/users/login", json={"login": "streamer", "password": "no"})
            assert r.status_code == 401

        proc.send_signal(signum)
        with trio.fail_after(10):  # grace is 5 s by default; it should take far less
            rest = await _drain(proc)
            assert await proc.wait() == 0
        assert "streamscale: stopped" in rest


async def test_unknown_service_and_bad_config(tmp_path: Path) -> None:
    result = await trio.run_process(
        [STREAMSCALE, "up", "--services", "nope"], env=_env(tmp_path),
        capture_stdout=True, capture_stderr=True, check=False,
    )
    assert result.returncode == 2 and b"unknown service 'nope'" in result.stderr
    result = await trio.run_process(
        [STREAMSCALE, "up"], env=_env(tmp_path, STREAMSCALE_GATEWAY__PORT="http"),
        capture_stdout=True, capture_stderr=True, check=False,
    )
    assert result.returncode == 2 and b"gateway.port" in result.stderr


async def test_list_services(tmp_path: Path) -> None:
    result = await trio.run_process([STREAMSCALE, "up", "--list"], capture_stdout=True)
    out = result.stdout.decode()
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["gateway", "media", "origin", "edge", "chat", "analytics"]
    assert "not built yet" not in out


async def test_delegated_commands_refuse_bad_arguments(tmp_path: Path) -> None:
    result = await trio.run_process([STREAMSCALE, "report"], capture_stderr=True, check=False)
    assert result.returncode == 2 and b"required: scenario" in result.stderr
    result = await trio.run_process([STREAMSCALE, "report", "baseline", "--load",
                                     str(tmp_path)], capture_stderr=True, check=False)
    assert result.returncode == 2 and b"no measured run" in result.stderr
    result = await trio.run_process([STREAMSCALE, "load"], capture_stderr=True, check=False)
    assert result.returncode == 2 and b"required: scenario" in result.stderr
    result = await trio.run_process([STREAMSCALE, "chaos", "no_such_drill"],
                                    capture_stderr=True, check=False)
    assert result.returncode == 2 and b"drills: cdn_outage" in result.stderr


@pytest.mark.parametrize("command", ["load", "chaos", "sim", "estimate", "calibrate"])
def test_subcommand_help_is_its_own(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`streamscale X --help` (an option before any argument) reaches X's own parser."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: streamscale {command}" in capsys.readouterr().out


# -- a plain install (no extras) runs: optional backends load only when configured ----------
# `./dev up` installs streamscale without extras, so `redis` and `psycopg` are absent on a
# new user's machine. The suite's venv has every extra, so these tests hide them with an
# import blocker in a child process. (`.ci/run` also starts `./dev up` from a fresh clone
# in a new venv.)

BLOCKER = """
import sys

class _NoExtras:
    blocked = {"redis", "psycopg", "psycopg_binary", "psycopg_c"}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoExtras())
for mod in list(sys.modules):
    if mod.split(".")[0] in _NoExtras.blocked:
        del sys.modules[mod]
from streamscale.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _command(tmp_path: Path) -> tuple[str, ...]:
    script = tmp_path / "no_extras.py"
    script.write_text(BLOCKER)
    return (sys.executable, str(script))


async def test_up_runs_without_optional_extras(tmp_path: Path) -> None:
    async with streamscale_up(tmp_path, command=_command(tmp_path)) as (proc, urls, _lines):
        async with httpx.AsyncClient() as client:
            r = await client.get(urls["openapi"])
            assert r.status_code == 200
            r = await client.get(urls["hls"] + "/live/nosuchstream/master.m3u8")
            assert r.status_code == 404  # the origin answers
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            rest = await _drain(proc)
            await proc.wait()
        assert proc.returncode == 0, rest
        assert "streamscale: stopped" in rest


async def _refused(tmp_path: Path, **env: str) -> str:
    result = await trio.run_process(
        [*_command(tmp_path), "up"], env=_env(tmp_path, **env), capture_stdout=True,
        capture_stderr=True, check=False,
    )
    assert result.returncode == 2, result.stderr.decode()
    assert b"ready" not in result.stdout
    return result.stderr.decode()


async def test_redis_bus_without_the_extra_names_it(tmp_path: Path) -> None:
    err = await _refused(tmp_path, STREAMSCALE_CHAT__BUS_URL="redis://u:secret@127.0.0.1:6379/0")
    assert "pip install 'streamscale[redis]'" in err
    assert "secret" not in err  # the password in the URL is not echoed
    assert "Traceback" not in err


async def test_postgres_without_the_extra_names_it(tmp_path: Path) -> None:
    err = await _refused(
        tmp_path, STREAMSCALE_STORAGE__URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    assert "pip install 'streamscale[postgres]'" in err
    assert "Traceback" not in err


def test_the_blocker_really_hides_the_extras(tmp_path: Path) -> None:
    """Guard against a blocker that blocks nothing (then the tests above prove nothing)."""
    probe = tmp_path / "probe.py"
    probe.write_text(BLOCKER.split("from streamscale.cli")[0] + "import redis\n")
    result = subprocess.run([sys.executable, str(probe)], capture_output=True, check=False)
    assert result.returncode != 0
    assert b"No module named 'redis'" in result.stderr
