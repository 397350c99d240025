"""Request coalescing: however many viewers ask one edge for one object at once, the
origin sees one request, for segments, preload-hinted parts and blocking reloads."""

from __future__ import annotations

import m3u8
import trio

from streamscale.services.cdn.edge import Edge

from ..origin.streams import LiveFeeder, RawClient, get, header
from .conftest import CountingOrigin, open_edge, parked, parked_at_origin

SEGMENT_VIEWERS = 200
PART_VIEWERS = 200
RELOAD_VIEWERS = 500


async def _fetch_all(
    base_url: str, path: str, n: int, nursery: trio.Nursery,
    results: list[tuple[int, bytes, bytes | None]],
) -> None:
    """Open `n` connections and send each the request (answers land in `results`)."""
    clients = [await RawClient.connect(base_url) for _ in range(n)]

    async def one(client: RawClient, i: int) -> None:
        await client.send_raw(get(f"{path}{'&' if '?' in path else '?'}CMCD=sid%3D%22v{i}%22"))
        answer = await client.response()
        assert answer is not None
        results.append((answer[0].status_code, answer[1], header(answer[0], b"x-cache")))
        await client.aclose()

    for i, client in enumerate(clients):
        nursery.start_soon(one, client, i)


def _next_part(playlist: bytes) -> tuple[int, int]:
    hint = m3u8.loads(playlist.decode()).preload_hint.uri
    msn, part = (int(x) for x in hint.split(".")[:2])
    return msn, part


async def _playlist(edge: Edge, path: str) -> bytes:
    client = await RawClient.connect(edge.url)
    await client.send_raw(get(path))
    answer = await client.response()
    await client.aclose()
    assert answer is not None and answer[0].status_code == 200
    return answer[1]


async def test_parked_viewers_cost_one_origin_request_per_object(
    origin: CountingOrigin, edge: Edge
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    msn, part = _next_part(await _playlist(edge, "/live/s1/hi/index.m3u8"))
    segment = f"/live/s1/hi/{msn}.m4s"  # the segment being made: the origin holds it
    hinted = f"/live/s1/hi/{msn}.{part}.m4s"
    reload = f"/live/s1/hi/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    got: dict[str, list[tuple[int, bytes, bytes | None]]] = {segment: [], hinted: [],
                                                              reload: []}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await _fetch_all(edge.url, segment, SEGMENT_VIEWERS, nursery, got[segment])
            await _fetch_all(edge.url, hinted, PART_VIEWERS, nursery, got[hinted])
            await _fetch_all(edge.url, reload, RELOAD_VIEWERS, nursery, got[reload])
            total = SEGMENT_VIEWERS + PART_VIEWERS + RELOAD_VIEWERS
            await parked(edge, total)
            await parked_at_origin(origin, 3)  # one held request per object, no more
            assert not any(got.values())
            feed.parts(1)  # the hinted part: the reload and the part are answered
            feed.seconds(msn + 1.1)  # the next keyframe closes the segment
    assert [len(got[p]) for p in (segment, hinted, reload)] == [
        SEGMENT_VIEWERS, PART_VIEWERS, RELOAD_VIEWERS]
    for path, answers in got.items():
        assert {status for status, _, _ in answers} == {200}, path
        assert len({body for _, body, _ in answers}) == 1, path
        assert {x_cache for _, _, x_cache in answers} == {b"MISS"}, path
        assert origin.counts[path.encode()] == 1, path  # CMCD stripped: one key
    assert got[segment][0][1] == feed.hi.resource(f"{msn}.m4s")[1]
    assert got[hinted][0][1] == feed.hi.resource(f"{msn}.{part}.m4s")[1]
    assert f"{msn}.{part}.m4s".encode() in got[reload][0][1]
    assert edge.stats.upstream_requests == 4  # with the first plain playlist
    assert edge.stats.coalesced == total - 3
    assert edge.waiting() == 0
    assert set(origin.routes.edge_headers) == {b"a1"}

    # now cached: more viewers are hits and the origin sees nothing more
    before = sum(origin.counts.values())
    for path in (segment, hinted, reload):
        client = await RawClient.connect(edge.url)
        await client.send_raw(get(path))
        answer = await client.response()
        assert answer is not None and header(answer[0], b"x-cache") == b"HIT"
        await client.aclose()
    assert sum(origin.counts.values()) == before
    assert edge.stats.hits == 3


async def test_two_edges_behind_one_shield_cost_one_origin_request(
    origin: CountingOrigin,
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    async with open_edge("shield", origin.url) as shield, \
            open_edge("c1", shield.url) as c1, open_edge("c2", shield.url) as c2:
        msn, part = _next_part(await _playlist(c1, "/live/s1/lo/index.m3u8"))
        reload = f"/live/s1/lo/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
        got: list[tuple[int, bytes, bytes | None]] = []
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await _fetch_all(c1.url, reload, 100, nursery, got)
                await _fetch_all(c2.url, reload, 100, nursery, got)
                await parked(c1, 100)
                await parked(c2, 100)
                await parked(shield, 2)  # one fetch from each child, joined at the shield
                await parked_at_origin(origin, 1)
                feed.parts(1)
        assert len(got) == 200 and {status for status, _, _ in got} == {200}
        assert origin.counts[reload.encode()] == 1
        assert shield.stats.upstream_requests == 2  # plain playlist + the reload
        assert shield.stats.coalesced == 1
        assert set(origin.routes.edge_headers) == {b"shield"}


async def test_waiters_answered_in_one_pass_keep_their_connections_right(
    origin: CountingOrigin, edge: Edge
) -> None:
    """The fetch writes a small answer to every parked socket itself: a HEAD gets the
    head only, `Connection: close` gets closed, and a keep-alive connection goes on."""
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    msn, part = _next_part(await _playlist(edge, "/live/s1/hi/index.m3u8"))
    reload = f"/live/s1/hi/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    keep, head, close = [await RawClient.connect(edge.url) for _ in range(3)]
    await keep.send_raw(get(reload))
    await head.send_raw(get(reload).replace(b"GET", b"HEAD", 1))
    await close.send_raw(get(reload, headers=b"Connection: close\r\n"))
    await parked(edge, 3)
    feed.parts(1)
    answer = await keep.response()
    assert answer is not None and answer[0].status_code == 200
    body = answer[1]
    assert f"{msn}.{part}.m4s".encode() in body
    answer = await head.response("HEAD")
    assert answer is not None and answer[0].status_code == 200 and answer[1] == b""
    assert header(answer[0], b"content-length") == str(len(body)).encode()
    answer = await close.response()
    assert answer is not None and answer[1] == body
    assert header(answer[0], b"connection") == b"close"
    assert await close.closed()
    for client in (keep, head):  # still open: the next request is a hit on each
        await client.send_raw(get(reload))
        answer = await client.response()
        assert answer is not None and header(answer[0], b"x-cache") == b"HIT"
        assert answer[1] == body
        await client.aclose()
    assert origin.counts[reload.encode()] == 1


async def _held_until_published(edge: Edge, feed: LiveFeeder, path: str) -> bytes:
    """A blocking reload through `edge`, parked until the feeder publishes the next part."""
    client = await RawClient.connect(edge.url)
    await client.send_raw(get(path))
    await parked(edge, 1)
    feed.parts(1)
    answer = await client.response()
    await client.aclose()
    assert answer is not None and answer[0].status_code == 200
    return answer[1]


async def test_a_joining_viewer_gets_the_playlist_the_last_blocking_reload_brought(
    origin: CountingOrigin, edge: Edge
) -> None:
    """The plain playlist is cached for its max-age (1 s, three parts); a viewer joining
    from that copy would start up to a second further behind the live edge. A blocking
    reload's answer is the newest playlist, so the edge serves it at the plain URL too."""
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    plain = "/live/s1/hi/index.m3u8"
    first = await _playlist(edge, plain)  # cached for a second
    msn, part = _next_part(first)
    newest = await _held_until_published(edge, feed, f"{plain}?_HLS_msn={msn}&_HLS_part={part}")
    assert f"{msn}.{part}.m4s".encode() in newest and newest != first
    joined = await RawClient.connect(edge.url)
    await joined.send_raw(get(plain))
    answer = await joined.response()
    await joined.aclose()
    assert answer is not None and answer[1] == newest
    assert header(answer[0], b"x-cache") == b"HIT"
    assert header(answer[0], b"cache-control") == b"max-age=1"
    assert origin.counts[plain.encode()] == 1  # the plain URL went upstream once
    # a delta update (`_HLS_skip`) is not the whole playlist: it never replaces it
    msn, part = _next_part(newest)
    await _held_until_published(
        edge, feed, f"{plain}?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES")
    assert await _playlist(edge, plain) == newest
