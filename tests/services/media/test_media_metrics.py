"""The media node's `/metrics` while ffmpeg publishes: the live stream's transcode lag,
load and shed rungs, read from its ladder, and the hub's counters."""

from __future__ import annotations

import subprocess
from functools import partial

import pytest
import trio

from streamscale.services.media import MediaHub
from streamscale.testing.metrics import Scrape, scrape

from .test_media_e2e import Live, _publish_cmd, _start, _status, _wait_for, live  # noqa: F401

pytestmark = pytest.mark.slow


async def test_transcode_gauges_follow_the_live_ladder(live: Live) -> None:  # noqa: F811
    hub = live.platform.handle("media", "hub")
    assert isinstance(hub, MediaHub)
    before = await scrape(live.api, "/metrics")
    assert before.value("streamscale_media_live_streams") == 0
    stream_id, key = await _start(live)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(
            trio.run_process, _publish_cmd(f"{live.rtmp}/{key}", 14), check=False,
            stderr=subprocess.DEVNULL))

        async def transcoding() -> bool:
            pipeline = hub.pipeline(stream_id)
            return (await _status(live, stream_id) == "live" and pipeline is not None
                    and pipeline.ladder is not None and pipeline.ladder.load > 0)

        await _wait_for(transcoding)
        during = await scrape(live.api, "/metrics")
        assert await hub.shed(stream_id) == "360p"
        shed = await scrape(live.api, "/metrics")
        nursery.cancel_scope.cancel()

    def stream(scrape: Scrape, name: str) -> float:
        values = [v for _, v in scrape.matching(name, stream=stream_id)]
        assert len(values) == 1, (name, values)
        return values[0]

    assert during.value("streamscale_media_live_streams") == 1
    assert during.value("streamscale_media_publishes_total") == 1
    assert stream(during, "streamscale_transcode_behind_seconds") >= 0
    assert stream(during, "streamscale_transcode_load") > 0
    assert stream(during, "streamscale_transcode_shed_rungs") == 0
    assert stream(shed, "streamscale_transcode_shed_rungs") == 1
    assert shed.value("streamscale_media_dropped_rungs_total") == 1
