"""The media hub: admission control, one publisher per stream, transcoder restarts,
reconnect within the grace period, and the end of a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from streamscale.backends.storage import Store, open_store
from streamscale.protocols.hls import PackagerConfig
from streamscale.services.media.hub import MediaHub
from streamscale.services.media.ingest import PublishRefused, Tag
from streamscale.services.media.pipeline import RUNGS
from streamscale.services.origin.registry import MediaRegistry
from streamscale.services.streaming import StreamService
from streamscale.testing import make_config
from streamscale.testing.rtmp_client import avc_sequence_header, avc_video

from .test_transcode import Clip, make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return make_clip(tmp_path_factory.mktemp("clip") / "c.flv", seconds=2, bframes=0, gop=15)


def _tags(clip: Clip, *, offset_ms: int = 0) -> list[Tag]:
    tags = [Tag("video", 0, avc_sequence_header(clip.avcc_record))]
    for au in clip.units:
        nals, pos = [], 0
        while pos < len(au.data):
            n = int.from_bytes(au.data[pos:pos + 4], "big")
            nals.append(au.data[pos + 4:pos + 4 + n])
            pos += 4 + n
        payload = avc_video(nals, keyframe=au.keyframe,
                            composition_time_ms=au.pts_ms - au.dts_ms)
        tags.append(Tag("video", au.dts_ms + offset_ms, payload))
    return tags


@dataclass
class Env:
    hub: MediaHub
    registry: MediaRegistry
    streams: StreamService
    store: Store


@pytest.fixture
async def env(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Env]:
    config = make_config(tmp_path)
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    streams = StreamService(store, config)
    registry = MediaRegistry()
    hub = MediaHub(
        nursery=nursery, streams=streams, registry=registry,
        rungs=[RUNGS["source"], RUNGS["360p"], RUNGS["160p"]],
        packager=PackagerConfig(segment_target_s=0.5, part_target_s=0.25),
        recordings_root=tmp_path / "rec", capacity=0.4, reconnect_grace_s=0.2,
    )
    yield Env(hub, registry, streams, store)
    await store.close()


async def _stream(env: Env) -> str:
    from streamscale.backends.storage import User
    from streamscale.services.clock import new_id, utcnow

    user = User(id=new_id(), username=f"u{new_id()[:8]}", email=f"{new_id()}@x.org",
                password_hash="x", display_name="u", bio="", created_at=utcnow(),
                updated_at=utcnow())
    await env.store.create_user(user)
    stream, _ = await env.streams.start(user_id=user.id, title="t", category="c", tags=[])
    return stream.id


async def test_admission_refuses_past_capacity_and_one_publisher(env: Env, clip: Clip) -> None:
    first, second = await _stream(env), await _stream(env)
    async with env.hub.publish(first) as feed:
        await feed.send(_tags(clip)[0])
        with pytest.raises(PublishRefused, match="already has a publisher"):
            async with env.hub.publish(first):
                pass
        with pytest.raises(PublishRefused, match="transcode capacity exceeded"):
            async with env.hub.publish(second):
                pass
    assert env.hub.stats.refused == 2


async def test_stream_is_packaged_and_ends_after_grace(env: Env, clip: Clip) -> None:
    stream_id = await _stream(env)
    async with env.hub.publish(stream_id) as feed:
        for tag in _tags(clip):
            await feed.send(tag)
        pipeline = env.hub.pipeline(stream_id)
    presentation = env.registry.lookup(stream_id)
    assert presentation is not None and pipeline is not None
    # The clip is 320x180: the 360p rung would upscale, so it is skipped.
    assert [r.name for r in presentation] == ["source", "160p"]
    with trio.fail_after(10):
        await pipeline.finished.wait()
    assert (await env.streams.get(stream_id)).status == "ended"
    assert env.registry.is_ended(stream_id)
    for rendition in presentation:
        assert rendition.ended
        assert b"#EXT-X-ENDLIST" in rendition.media_playlist()


async def test_reconnect_within_grace_continues_the_timeline(env: Env, clip: Clip) -> None:
    stream_id = await _stream(env)
    async with env.hub.publish(stream_id) as feed:
        for tag in _tags(clip):
            await feed.send(tag)
    presentation = env.registry.lookup(stream_id)
    async with env.hub.publish(stream_id) as feed:  # timestamps restart at 0
        for tag in _tags(clip):
            await feed.send(tag)
    assert env.registry.lookup(stream_id) is presentation  # same stream, no new playlists
    source = presentation.get("source") if presentation else None
    assert source is not None and not source.ended
    assert source.position.last_msn >= 4  # ~4 s of media at 0.5 s segments, one timeline
    assert (await env.streams.get(stream_id)).status != "ended"


async def test_transcoder_crash_restarts_and_source_carries_on(env: Env, clip: Clip) -> None:
    stream_id = await _stream(env)
    tags = _tags(clip)
    garbage = [Tag("video", 500 + i, avc_video([b"\x01" + bytes([0xFF - i]) * 40],
                                                 keyframe=False)) for i in range(8)]
    async with env.hub.publish(stream_id) as feed:
        for tag in tags[:16]:
            await feed.send(tag)
        for tag in garbage:
            await feed.send(tag)
        for tag in _tags(clip, offset_ms=600)[1:]:
            await feed.send(tag)
    presentation = env.registry.lookup(stream_id)
    assert presentation is not None
    assert env.hub.stats.transcoder_restarts >= 1
    source, low = presentation.get("source"), presentation.get("160p")
    assert source is not None and low is not None
    assert source.position.last_msn >= 3 and low.position.last_msn >= 2  # both went on after it
