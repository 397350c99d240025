"""The run's own stream (trio side): a caster, a started stream, ffmpeg publishing it.

`publish_command` is shared with the Locust streamer user (plain data, no I/O here).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from typing import Any

import httpx
import trio

CASTER_PASSWORD = "load pass word 1"


class LoadRefused(Exception):
    """The platform refused the run's own set-up requests (accounts, the stream)."""


def _checked(response: httpx.Response, what: str) -> httpx.Response:
    """`response` if it succeeded; a 429 on the run's own set-up is named with its fix."""
    if response.status_code == 429:
        raise LoadRefused(
            f"the platform rate-limited the run's own {what} ({response.request.url}): every "
            "load user comes from 127.0.0.1, so its per-address limits must be raised for a "
            "load run (gateway.login_rate_per_minute and gateway.write_rate_per_minute, e.g. "
            "STREAMSCALE_GATEWAY__LOGIN_RATE_PER_MINUTE=100000; `streamscale load` without "
            "--target does this for the platform it starts)")
    response.raise_for_status()
    return response


def publish_command(url: str, seconds: float) -> list[str]:
    """ffmpeg publishing a test pattern over RTMP in real time, 2 s keyframes (as OBS)."""
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", f"{seconds:.0f}", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url]


async def caster_stream(api: httpx.AsyncClient, api_url: str) -> dict[str, Any]:
    """Register a caster, sign in, start a stream; the start answer (stream, key, URLs)."""
    name = f"loadcaster{uuid.uuid4().hex[:10]}"
    _checked(await api.post(f"{api_url}/users/register", json={
        "username": name, "email": f"{name}@example.com", "password": CASTER_PASSWORD}),
        "sign-up")
    r = _checked(await api.post(f"{api_url}/users/login",
                                json={"login": name, "password": CASTER_PASSWORD}), "sign-in")
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = _checked(await api.post(f"{api_url}/streams/start", headers=auth,
                                json={"title": "load test", "category": "test"}),
                 "stream start")
    started: dict[str, Any] = r.json()
    return started


async def viewer_tokens(api: httpx.AsyncClient, api_url: str, count: int, *,
                        prefix: str = "chatter", concurrency: int = 2) -> list[str]:
    """`count` accounts registered and signed in before the run; their access tokens.
    Few at a time: each is an argon2 hash on the server, which the run should not pay."""
    tokens: list[str] = []
    limiter = trio.CapacityLimiter(concurrency)

    async def one() -> None:
        async with limiter:
            name = f"{prefix}{uuid.uuid4().hex[:10]}"
            _checked(await api.post(f"{api_url}/users/register", json={
                "username": name, "email": f"{name}@example.com",
                "password": CASTER_PASSWORD}), "sign-ups")
            r = _checked(await api.post(f"{api_url}/users/login",
                                        json={"login": name, "password": CASTER_PASSWORD}),
                         "sign-ins")
            tokens.append(str(r.json()["access_token"]))

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return tokens


async def publish(url: str, seconds: float) -> None:
    await trio.run_process(publish_command(url, seconds), check=False,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


async def wait_live(api: httpx.AsyncClient, api_url: str, stream_id: str,
                    timeout_s: float) -> str:
    """Poll until the stream is live and its first rendition lists two segments; the
    master (playback) URL. Polls another process's progress over HTTP, with a deadline."""
    with trio.fail_after(timeout_s):
        while True:
            body = (await api.get(f"{api_url}/streams/{stream_id}")).json()
            url = str(body.get("playback_url") or "")
            if body.get("status") == "live" and url:
                master = await api.get(url)
                if master.status_code == 200:
                    first = next((line for line in master.text.splitlines()
                                  if line and not line.startswith("#")), "")
                    media = await api.get(httpx.URL(url).join(first))
                    if media.status_code == 200 and media.text.count("#EXTINF") >= 2:
                        return url
            await trio.sleep(0.2)
