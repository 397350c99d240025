"""A rung shed and restored while ffmpeg publishes, as players see it through the origin.

A player that loaded the master before the shed keeps a playlist that never ends: from
the next keyframe it carries the next rung's pictures after EXT-X-DISCONTINUITY and a new
init segment, and after the restore its own again. New players get a master without the
shed rung until it is restored. Every playlist passes the strict HLS parser. (hls.js
through the same shed and restore: tests/browser/.)
"""

from __future__ import annotations

import io
import subprocess
from functools import partial

import av
import httpx
import pytest
import trio

from streamscale.services.media import MediaHub
from streamscale.testing.hls_validate import validate_all

from .test_media_e2e import Live, _publish_cmd, _start, _status, _wait_for, live  # noqa: F401

pytestmark = pytest.mark.slow


def _decoded_size(init: bytes, media: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(init + media), format="mp4") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


async def test_shed_and_restore_while_publishing(live: Live) -> None:  # noqa: F811
    hub = live.platform.handle("media", "hub")
    assert isinstance(hub, MediaHub)
    stream_id, key = await _start(live)
    base = f"{live.hls}/live/{stream_id}"
    served: list[tuple[str, bytes]] = []
    async with httpx.AsyncClient() as origin, trio.open_nursery() as nursery:

        async def get(path: str) -> str:
            r = await origin.get(f"{base}/{path}")
            assert r.status_code == 200, (path, r.status_code, r.text)
            served.append((path, r.content))
            return r.text

        publisher = await nursery.start(partial(
            trio.run_process, _publish_cmd(f"{live.rtmp}/{key}", 14), check=False,
            stderr=subprocess.DEVNULL))

        async def rungs_listed() -> bool:
            if await _status(live, stream_id) != "live":
                return False
            r = await origin.get(f"{base}/master.m3u8")
            return r.status_code == 200 and "160p/index.m3u8" in r.text

        await _wait_for(rungs_listed)
        assert "360p/index.m3u8" in await get("master.m3u8")
        assert await hub.restore(stream_id) is None  # nothing shed yet

        assert await hub.shed(stream_id) == "360p"  # the costliest encoded rung
        master = await get("master.m3u8")
        assert "360p/" not in master and "160p/index.m3u8" in master  # new players

        async def switched_to(init: str) -> bool:
            return f'#EXT-X-MAP:URI="{init}"' in await get("360p/index.m3u8")

        await _wait_for(partial(switched_to, "init-1.mp4"), timeout_s=20)
        text = await get("360p/index.m3u8")
        assert "#EXT-X-ENDLIST" not in text and "#EXT-X-DISCONTINUITY\n" in text
        after = text.split('#EXT-X-MAP:URI="init-1.mp4"')[1]
        first = after.split('URI="')[1].split('"')[0]  # the break's first part
        init = (await origin.get(f"{base}/360p/init-1.mp4")).content
        part = (await origin.get(f"{base}/360p/{first}")).content
        assert _decoded_size(init, part) == (284, 160)  # 160p's pictures on 360p's playlist

        assert await hub.restore(stream_id) == "360p"
        assert "360p/index.m3u8" in await get("master.m3u8")
        await _wait_for(partial(switched_to, "init-2.mp4"), timeout_s=20)
        text = await get("360p/index.m3u8")
        after = text.split('#EXT-X-MAP:URI="init-2.mp4"')[1]
        first = after.split('URI="')[1].split('"')[0]
        init = (await origin.get(f"{base}/360p/init-2.mp4")).content
        part = (await origin.get(f"{base}/360p/{first}")).content
        assert _decoded_size(init, part) == (640, 360)  # its own again
        await get("360p/classic.m3u8")
        await get("360p/index.m3u8?_HLS_skip=YES")
        publisher.kill()
    await trio.to_thread.run_sync(validate_all, served)
