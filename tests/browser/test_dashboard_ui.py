"""The creator dashboard (/dashboard) in Chromium, on a platform in this process.

A streamer signs in through the login page, creates a stream in the dashboard, sees the
key once (a reload does not show it again, and the API keeps only its hash), publishes
with the ffmpeg command line the page shows (a test pattern as its input), and the live
health the page refreshes from `GET /api/streams/{id}/analytics` shows the publisher's
frame rate (30 fps, within tolerance), its 2 s keyframe interval and bitrate, and the
viewer an hls.js player adds;
the charts draw (chat messages per minute too, after three posts). Rotating the key asks
first, then shows a new key, and the ingest cuts off the publisher on the old one (the
stream ends). axe-core finds no serious or critical violation; screenshots at 1280x800 and
390x844 go to reports/ui/.

Tolerance for the frame rate: the media node measures it from the publisher's timestamps
over each health sample (analytics.health_sample_s); ffmpeg's 30 fps test source with
`-re` gives 30 +- one frame per sample, so a 1 s sample reads 29-31.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from streamscale.config import AnalyticsConfig, CdnConfig, EdgeConfig, MediaConfig
from streamscale.testing import RunningPlatform, make_config, running_platform
from streamscale.testing.browser import Browser
from tests.services.helpers import register

from ._ui import dump, open_page, sign_in
from .conftest import FFMPEG

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FPS, FPS_TOLERANCE = 30.0, 1.0
PASSWORD = "correct horse 1"


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[RunningPlatform]:
    config = make_config(
        tmp_path,
        cdn=CdnConfig(edges=(EdgeConfig(name="a1", cdn="a"),), records_flush_s=0.25,
                      viewer_idle_s=3.0, viewer_sample_s=0.25),
        analytics=AnalyticsConfig(health_sample_s=1.0, health_flush_s=1.0))
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=1.0, ladder="source,160p",
        shed_sustain_s=3600.0, restore_after_s=3600.0))
    services = ("gateway", "media", "origin", "edge", "analytics", "chat")
    async with running_platform(config, services) as running:
        yield running


def _page_command(shown: str) -> list[str]:
    """The ffmpeg line the page shows, run as is but for its input: a 30 fps test pattern
    and a tone for 120 s instead of input.mp4."""
    cmd = shlex.split(shown)
    at = cmd.index("input.mp4")
    assert cmd[0] == "ffmpeg" and cmd[at - 1] == "-i", cmd
    source = ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
              "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "120",
              "-pix_fmt", "yuv420p"]
    return [FFMPEG, "-hide_banner", "-loglevel", "error", *cmd[1:at - 1], *source,
            *cmd[at + 1:]]


def _number(text: str) -> float:
    found = re.search(r"[\d.,]+", text)
    assert found, text
    return float(found.group().replace(",", ""))


async def test_streamer_goes_live_from_the_dashboard(platform: RunningPlatform,
                                                      browser: Browser) -> None:
    base = platform.api_url.removesuffix("/api")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        await register(api, "caster", PASSWORD)
    ui = await open_page(browser, base)
    await sign_in(ui, "caster", PASSWORD, next_path="/dashboard")
    await ui.until_visible("#create-form")
    assert not await ui.serious_violations(), "axe: the empty dashboard"

    # the form says what is missing, in words, before asking the API
    await ui.click("#create-button")
    await ui.until_visible("#create-error")
    assert "Title" in await ui.text("#create-error")

    await ui.fill("#title", "Speedrun practice")
    await ui.fill("#category", "Games")
    await ui.fill("#tags", "speedrun, any-percent")
    await ui.click("#create-button")
    await ui.until_visible("#key-panel")
    key = await ui.value("#stream-key")
    publish_url = await ui.value("#publish-url")
    assert key and publish_url == f"{platform.url('media', 'rtmp')}/{key}"
    assert await ui.value("#ingest-url") == platform.url("media", "rtmp")
    shown_cmd = await ui.text("#ffmpeg-cmd")
    assert publish_url in shown_cmd
    # the copy button puts the key on the clipboard
    context = ui.context
    await ui.call(lambda: context.grant_permissions(["clipboard-read", "clipboard-write"],
                                                    origin=base))
    await ui.click("button[data-copy=stream-key]")
    await ui.until("document.querySelector('#copy-status').textContent === 'Copied.'",
                   what="the copy confirmed")
    assert await ui.evaluate("navigator.clipboard.readText()") == key
    stream_id = await ui.evaluate(
        "document.querySelector('.stream-pick[aria-pressed=true]').dataset.streamId")
    assert await ui.text("#stream-h") == "Speedrun practice"
    assert not await ui.serious_violations(), "axe: the dashboard with the key"

    assert await ui.evaluate("localStorage.length + sessionStorage.length") == 0
    assert key not in await ui.evaluate("location.href + document.cookie")
    # shown once: a reload has no key, and neither has the API
    await ui.goto("/dashboard")
    await ui.until_visible("#stream-panel")
    assert not await ui.visible("#key-panel")
    assert key not in await ui.evaluate("document.documentElement.outerHTML")
    async with httpx.AsyncClient(timeout=30) as api:
        assert key not in (await api.get(f"{platform.api_url}/streams/{stream_id}")).text

    async with trio.open_nursery() as nursery:
        publisher = await nursery.start(partial(
            trio.run_process, _page_command(shown_cmd), check=False,
            stderr=subprocess.DEVNULL))
        await ui.until("document.querySelector('#stream-state').textContent === 'Live'",
                       timeout_s=60, what="the stream live")
        fps = _number(await ui.until(
            "(() => { const t = document.querySelector('#h-fps').textContent;"
            " return t.includes('fps') ? t : ''; })()", timeout_s=60, what="a frame rate"))
        async with httpx.AsyncClient(timeout=30) as api:
            playback = (await api.get(
                f"{platform.api_url}/streams/{stream_id}")).json()["playback_url"]
        player = await browser.open_player(playback)
        viewers = await ui.until(
            "(() => { const n = parseInt(document.querySelector('#h-viewers').textContent);"
            " return n >= 1 ? n : 0; })()", timeout_s=60, what="a viewer")
        # the frame rate again now that more samples are in: the newest one
        fps = _number(await ui.text("#h-fps"))
        assert abs(fps - FPS) <= FPS_TOLERANCE, fps
        keyframe = await ui.until(
            "(() => { const t = document.querySelector('#h-keyframe').textContent;"
            " return t.endsWith(' s') ? t : ''; })()", timeout_s=30, what="a keyframe interval")
        assert abs(_number(keyframe) - 2.0) <= 0.1, keyframe
        assert _number(await ui.text("#h-bitrate")) > 0
        assert await ui.text("#h-shed") == "none"
        assert viewers == 1
        await ui.until("document.querySelector('#c-bitrate-cap').textContent.includes('latest')",
                       what="the bitrate chart")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            token = (await api.post("/api/users/login", json={
                "login": "caster", "password": PASSWORD})).json()["access_token"]
            for n in range(3):
                r = await api.post(f"/api/streams/{stream_id}/chat",
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"client_id": f"c{n}", "text": f"hello {n}"})
                assert r.status_code == 201, r.text
        await ui.until("document.querySelector('#s-chat').textContent.startsWith('3 ')",
                       timeout_s=45, what="3 chat messages in the summary")
        assert await ui.evaluate("document.querySelectorAll('#c-chat rect.chart-bar')"
                                 ".length") >= 1
        await ui.until("document.querySelector('#c-viewers-cap').textContent"
                       ".includes('highest 1 (viewers')", timeout_s=45, what="the viewers chart")
        assert (await ui.text("#s-renditions")).endswith(": 1")  # hls.js's pick
        assert await ui.evaluate("document.querySelectorAll('#c-bitrate path.chart-line')"
                                 ".length") == 1
        assert not await ui.serious_violations(), "axe: the live dashboard"

        # rotating asks first; cancel keeps the key, confirm shows a new one
        await ui.click("#rotate-button")
        await ui.until("document.querySelector('#rotate-dialog').open", what="the dialog")
        await ui.press("#rotate-cancel", "Enter")
        await ui.until("!document.querySelector('#rotate-dialog').open", what="it closed")
        assert not await ui.visible("#key-panel")
        await ui.click("#rotate-button")
        await ui.until("document.querySelector('#rotate-dialog').open", what="the dialog")
        await ui.click("#rotate-confirm")
        await ui.until_visible("#key-panel")
        new_key = await ui.value("#stream-key")
        assert new_key and new_key != key, dump([key, new_key])
        assert "old one no longer works" in await ui.text("#dash-status")
        await ui.screenshots("dashboard")
        assert await ui.overflow_at_phone_width() == 0
        await player.close()
        # the old key stopped working: the ingest cuts ffmpeg off, the stream ends
        with trio.fail_after(30):
            await publisher.wait()
        assert publisher.returncode != 0
        await ui.until("document.querySelector('#stream-state').textContent === 'Ended'",
                       timeout_s=30, what="the stream ended after the rotation")
    await ui.close()
