"""hls.js in Chromium plays what publishers send besides H.264 4:2:0 + AAC: GStreamer with
default caps (x264enc negotiates Y444: High 4:4:4 Predictive; the platform serves an
encoded 4:2:0 8-bit source rung instead) and an audio-only publish.

Debian's Chromium decodes High 4:4:4 in software, so it would also have played the
passthrough; Safari, Firefox and hardware decoders do not. What keeps 4:4:4 away from them
is asserted on the playlists and the served bitstream (tests/services/media/
test_sources.py); here the encoded source rung is shown to play in a real player."""

from __future__ import annotations

import shutil
import subprocess
from functools import partial

import pytest
import trio

from streamscale.testing.browser import Browser, Player, PlayerState

from .conftest import FFMPEG, Stream, wait_for_master
from .test_playback import assert_advancing, playing, watch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GST_LAUNCH = shutil.which("gst-launch-1.0")


@pytest.mark.skipif(GST_LAUNCH is None, reason="gst-launch-1.0 is not installed")
async def test_hls_js_plays_a_gstreamer_default_caps_publish(
    stream: Stream, browser: Browser
) -> None:
    assert GST_LAUNCH is not None
    # No caps filter: videotestsrc ! x264enc negotiates Y444. Only the GOP is set (2 s).
    pipeline = [GST_LAUNCH, "-q", "videotestsrc", "is-live=true", "num-buffers=1800", "!",
                "x264enc", "key-int-max=60", "!", "flvmux", "streamable=true", "!",
                "rtmpsink", f"location={stream.publish_url} live=1"]
    async with trio.open_nursery() as nursery:
        publisher: trio.Process = await nursery.start(partial(
            trio.run_process, pipeline, check=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        master = await wait_for_master(stream.master_url, rungs=2)
        assert 'CODECS="avc1.f4' not in master  # never High 4:4:4 to a browser
        player = await browser.open_player(stream.master_url)
        first = await playing(player)
        # hls.js drops levels whose CODECS the browser's MSE refuses: both must be there.
        heights = [level["height"] for level in first.levels]
        assert sorted(heights) == [160, 240], first.levels
        await player.evaluate(f"hls.currentLevel = {heights.index(240)}")  # the source
        states = await watch(player, 8)
        assert_advancing([first, *states])
        assert states[-1].level_height == 240
        publisher.terminate()


async def _audio_playing(player: Player, *, timeout_s: float = 60) -> PlayerState:
    with trio.fail_after(timeout_s):
        while True:
            state = await player.state()
            assert state.fatal is None, state.errors
            if state.current_time_s > 0 and not state.paused:
                return state
            await trio.sleep(0.2)


async def test_hls_js_plays_an_audio_only_publish(stream: Stream, browser: Browser) -> None:
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000", "-t", "60", "-c:a", "aac", "-f", "flv",
           stream.publish_url]
    async with trio.open_nursery() as nursery:
        publisher: trio.Process = await nursery.start(partial(
            trio.run_process, cmd, check=False, stderr=subprocess.DEVNULL))
        master = await wait_for_master(stream.master_url, rungs=1)
        assert 'CODECS="mp4a.40.2"' in master and "RESOLUTION" not in master
        player = await browser.open_player(stream.master_url)
        first = await _audio_playing(player)
        states = await watch(player, 6)
        for older, newer in zip([first, *states], states[2:], strict=False):
            assert newer.current_time_s > older.current_time_s, [s.current_time_s
                                                                 for s in states]
        assert all(s.fatal is None and not s.ended for s in states), states[-1].errors
        publisher.terminate()
