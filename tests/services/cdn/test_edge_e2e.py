"""A live stream published with ffmpeg, served through edges started by the edge service
(`running_platform` with the origin), read by ffmpeg and by what LL-HLS players fetch;
every playlist the edges served passes the strict parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import m3u8
import pytest
import trio

from streamscale.config import CdnConfig, EdgeConfig
from streamscale.services.cdn.edge import Edge
from streamscale.testing import make_config
from streamscale.testing.hls_validate import validate_all

from ..media.test_media_e2e import (
    FFMPEG,
    Live,
    _collect_ll_playlists,
    _ffprobe,
    _publish_live,
    _start,
    open_live,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    config = make_config(tmp_path, cdn=CdnConfig(edges=(
        EdgeConfig(name="a1", cdn="a", upstream="shield"),  # the first is CDN a's entry
        EdgeConfig(name="shield", cdn="a"),
        EdgeConfig(name="b1", cdn="b"),
    )))
    async with open_live(config, ("gateway", "media", "origin", "edge")) as opened:
        yield opened


async def test_live_stream_through_edges_plays_and_validates(live: Live) -> None:
    edges = live.platform.handle("edge", "edges")
    assert isinstance(edges, dict)
    a1, shield, b1 = edges["a1"], edges["shield"], edges["b1"]
    assert isinstance(a1, Edge) and isinstance(shield, Edge) and isinstance(b1, Edge)
    stream_id, key = await _start(live)
    served: list[tuple[str, bytes]] = []
    async with trio.open_nursery() as nursery:
        publisher = await _publish_live(live, nursery, stream_id, key, 12)
        async with httpx.AsyncClient(timeout=30) as client:
            for edge in (a1, b1):
                await _collect_ll_playlists(client, f"{edge.url}/live/{stream_id}",
                                            ["360p", "source", "160p"], served)
            # a segment: the first viewer misses, the next is a hit with the same bytes
            playlist = m3u8.loads((await client.get(
                f"{a1.url}/live/{stream_id}/160p/index.m3u8")).text)
            segment = f"{a1.url}/live/{stream_id}/160p/{playlist.segments[0].uri}"
            first, second = await client.get(segment), await client.get(segment)
            assert first.status_code == second.status_code == 200
            assert second.headers["x-cache"] == "HIT" and second.content == first.content
            assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert first.headers["access-control-allow-origin"] == "*"
        # real players through the edge behind the shield
        await trio.run_process([FFMPEG, "-v", "error", "-i",
                                f"{a1.url}/live/{stream_id}/master.m3u8", "-t", "1.5",
                                "-f", "null", "-"])
        probe = await _ffprobe(f"{a1.url}/live/{stream_id}/160p/index.m3u8")
        kinds = {s["codec_type"]: s for s in probe["streams"]}
        assert kinds["video"]["codec_name"] == "h264" and kinds["video"]["height"] == 160
        assert kinds["audio"]["codec_name"] == "aac"
        publisher.terminate()
    # only the shield went to the origin for a1; b1 pulled itself
    assert a1.stats.upstream_requests > 0 and a1.stats.hits > 0
    assert shield.stats.upstream_requests <= a1.stats.upstream_requests
    assert b1.stats.upstream_requests > 0
    assert len(served) > 20
    await trio.to_thread.run_sync(validate_all, served)
