"""Access records: every answered /live request is counted for its viewer session (CMCD
sid, else address + user agent), rendition and bytes, and reaches the sender in batches."""

from __future__ import annotations

from functools import partial

import httpx
import trio
import trio.testing

from streamscale.services.cdn.records import UsageBatch, UsageRecorder

from ..origin.streams import LiveFeeder
from .conftest import CountingOrigin, open_edge


def cmcd(sid: str) -> str:
    return f'CMCD=bl%3D1200%2Csid%3D%22{sid}%22'


async def test_records_reach_the_sender_with_sessions_renditions_and_bytes(
    origin: CountingOrigin,
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(2.2)
    recorder = UsageRecorder("a1", "a")
    async with open_edge("a1", origin.url, recorder=recorder) as edge, \
            httpx.AsyncClient(base_url=edge.url) as client:
        sizes: dict[str, int] = {"v1": 0, "v2": 0, "anon": 0}
        # viewer v1: master, then the hi playlist and a segment, CMCD in the query
        for path in ("/live/s1/master.m3u8", "/live/s1/hi/index.m3u8", "/live/s1/hi/0.m4s"):
            r = await client.get(f"{path}?{cmcd('v1')}")
            assert r.status_code == 200
            sizes["v1"] += len(r.content)
        # viewer v2: the same objects (now hits), CMCD as a header, query kept apart
        for path in ("/live/s1/master.m3u8", "/live/s1/lo/0.m4s", "/live/s1/lo/0.m4s"):
            r = await client.get(path, headers={"cmcd-session": 'sid="v2"'})
            assert r.status_code == 200
            sizes["v2"] += len(r.content)
        head = await client.head("/live/s1/lo/1.m4s", headers={"cmcd-session": 'sid="v2"'})
        assert head.status_code == 200  # a HEAD counts as a request of 0 bytes
        # a player without CMCD: address + user agent
        r = await client.get("/live/s1/hi/0.m4s", headers={"user-agent": "player/1"})
        sizes["anon"] += len(r.content)
        for _ in range(2):  # polling a stream that is not live: a 404, then its cached copy
            missing = await client.get("/live/nope/hi/0.m4s", headers={"user-agent": "player/1"})
            assert missing.status_code == 404
        assert (await client.get("/healthz")).status_code == 200  # not a viewer request
        # CMCD is not part of the key: one origin fetch for v1's master and v2's
        assert origin.counts[b"/live/s1/master.m3u8"] == 1
        assert edge.stats.hits >= 2

    sent: list[UsageBatch] = []

    async def send(batch: UsageBatch) -> None:
        sent.append(UsageBatch.decode(batch.encode()))  # through the wire format

    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(recorder.run, send, interval_s=3600.0, shutdown=shutdown))
        await trio.testing.wait_all_tasks_blocked()
        shutdown.set()  # the last flush, at once
    by_stream = {batch.stream_id: batch for batch in sent}
    assert set(by_stream) == {"s1"}  # error answers are not viewing: nothing for "nope"
    assert by_stream["s1"].source == "a1" and by_stream["s1"].cdn == "a"
    sessions = {s.session: s for s in by_stream["s1"].sessions}
    anon = [sid for sid in sessions if sid.startswith("addr:")]
    assert set(sessions) == {"v1", "v2", *anon} and len(anon) == 1
    assert (sessions["v1"].rendition, sessions["v1"].requests, sessions["v1"].bytes) == (
        "hi", 3, sizes["v1"])
    assert (sessions["v2"].rendition, sessions["v2"].requests, sessions["v2"].bytes) == (
        "lo", 4, sizes["v2"])
    assert (sessions[anon[0]].rendition, sessions[anon[0]].requests,
            sessions[anon[0]].bytes) == ("hi", 1, sizes["anon"])
    assert recorder.sent == 1 and recorder.dropped == 0


async def test_recorder_flushes_once_even_if_shutdown_came_first() -> None:
    recorder = UsageRecorder("a1", "a")
    recorder.record("s1", "hi", "v1", 100)
    sent: list[UsageBatch] = []

    async def send(batch: UsageBatch) -> None:
        sent.append(batch)

    shutdown = trio.Event()
    shutdown.set()
    await recorder.run(send, interval_s=3600.0, shutdown=shutdown)
    assert [(b.stream_id, [s.bytes for s in b.sessions]) for b in sent] == [("s1", [100])]


async def test_master_only_viewer_has_no_rendition(origin: CountingOrigin) -> None:
    LiveFeeder(origin.registry).seconds(1.2)
    recorder = UsageRecorder("a1", "a")
    async with open_edge("a1", origin.url, recorder=recorder) as edge, \
            httpx.AsyncClient(base_url=edge.url) as client:
        r = await client.get(f"/live/s1/master.m3u8?{cmcd('m')}")
    (batch,) = recorder.take()
    (usage,) = batch.sessions
    assert (usage.session, usage.rendition, usage.bytes) == ("m", "", len(r.content))
    assert edge.stats.misses == 1
