"""The served OpenAPI spec is true to the routes: schemathesis finds no 5xx and no
response that breaks the spec, with and without a signed-in user."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx
import trio

from streamscale.testing import RunningPlatform, make_config, running_platform

from .helpers import signed_in

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
])


async def test_spec_lists_every_route(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    paths = spec["paths"]
    for path, method in [
        ("/api/users/register", "post"), ("/api/users/login", "post"),
        ("/api/users/{user_id}", "get"), ("/api/users/me", "patch"),
        ("/api/streams/start", "post"), ("/api/streams/{stream_id}/stop", "post"),
        ("/api/streams/{stream_id}", "get"), ("/api/streams/{stream_id}/key", "post"),
        ("/api/users/{user_id}/follow", "put"), ("/api/users/{user_id}/followers", "get"),
        ("/api/streams/{stream_id}/chat", "post"), ("/api/streams/{stream_id}/chat", "get"),
        ("/api/channels/{channel_id}/bans", "post"),
        ("/api/channels/{channel_id}/appeals/{appeal_id}/decision", "post"),
        ("/api/channels/{channel_id}/review", "get"), ("/api/channels/{channel_id}/audit", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    async with running_platform(make_config(tmp_path), ("gateway", "chat")) as platform:
        base = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            await _fuzz(api, platform, tmp_path)


async def _fuzz(api: httpx.AsyncClient, platform: RunningPlatform, tmp_path: Path) -> None:
    auth = await signed_in(api, "fuzzer")
    # A stream of the fuzzer's own, so owner-only routes are reachable by example.
    await api.post("/api/streams/start", headers=auth, json={"title": "t", "category": "c"})
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    spec_url = platform.api_url + "/openapi.json"
    for headers in ([], ["-H", f"Authorization:{auth['Authorization']}"]):
        result = await trio.run_process(
            [st, "run", spec_url, "--checks", CHECKS, "--max-examples", "25",
             "--phases", "examples,coverage,fuzzing", "--workers", "1",
             "--request-timeout", "20", "--seed", "1", "--no-color", *headers],
            capture_stdout=True, capture_stderr=True, check=False, cwd=tmp_path,
        )
        output = result.stdout.decode() + result.stderr.decode()
        assert result.returncode == 0, output[-6000:]
