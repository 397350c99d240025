"""Failures: an upstream that refuses or never answers, fault drills on the edge itself,
and graceful shutdown with viewers parked."""

from __future__ import annotations

from functools import partial

import httpx
import m3u8
import trio
import trio.testing

from streamscale.services.cdn.edge import Edge

from ..origin.streams import LiveFeeder, RawClient, get, header
from .conftest import CountingOrigin, open_edge, parked, parked_at_origin


async def _free_port() -> int:
    """A port nobody listens on (bound, then closed)."""
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def test_unreachable_upstream_is_a_clear_502() -> None:
    port = await _free_port()
    async with open_edge("a1", f"http://127.0.0.1:{port}") as edge, \
            httpx.AsyncClient() as client, trio.open_nursery() as nursery:
        answers: list[httpx.Response] = []

        async def ask() -> None:
            answers.append(await client.get(f"{edge.url}/live/s1/hi/0.m4s"))

        for _ in range(5):
            nursery.start_soon(ask)
    assert [r.status_code for r in answers] == [502] * 5
    r = answers[0]
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["cache-control"] == "no-store"
    assert r.text.startswith(f"edge a1: upstream http://127.0.0.1:{port} failed: cannot connect")
    assert edge.stats.hits == 0  # an error answer is never stored


async def test_silent_upstream_is_a_504_after_the_hold_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # accept, read nothing, answer nothing

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with open_edge("a1", f"http://127.0.0.1:{port}") as edge, \
                httpx.AsyncClient(timeout=120) as client:
            start = trio.current_time()
            r = await client.get(f"{edge.url}/live/s1/hi/index.m3u8?_HLS_msn=9")
            waited_s = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert r.status_code == 504
    assert r.text == f"edge a1: upstream http://127.0.0.1:{port} did not answer within 20 s\n"
    assert 20 <= waited_s < 21  # 3 x the default 6 s target + 2 s margin, in mock time


async def test_fault_down_refuses_and_none_restores(origin: CountingOrigin, edge: Edge) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    idle = await RawClient.connect(edge.url)  # keep-alive connections opened before
    busy = await RawClient.connect(edge.url)
    for client in (idle, busy):
        await client.send_raw(get("/healthz"))
        answer = await client.response()
        assert answer is not None and answer[0].status_code == 200 and answer[1] == b"ok\n"
    pos = feed.hi.position
    await busy.send_raw(get(f"/live/s1/hi/index.m3u8?_HLS_msn={pos.last_msn + 1}"))
    await parked(edge, 1)

    edge.set_fault("down")  # as if killed
    with trio.fail_after(5):
        answer = await busy.response()  # the held request ends at once
        assert answer is not None and answer[0].status_code == 503
        assert answer[1] == b"edge a1 is down (fault drill)\n"
        assert header(answer[0], b"connection") == b"close"
        assert await busy.closed()
        assert await idle.closed()  # the idle keep-alive connection is closed
        fresh = await RawClient.connect(edge.url)
        assert await fresh.closed()  # a new connection is closed at once
    feed.parts(3)  # the origin answers the fetch: nothing is written to the gone viewer

    edge.set_fault(None)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{edge.url}/healthz")
        assert r.status_code == 200
        r = await client.get(f"{edge.url}/live/s1/hi/index.m3u8?_HLS_msn={pos.last_msn + 1}")
        assert r.status_code == 200  # held requests work again after the restore


async def test_fault_blackhole_accepts_and_never_answers(
    origin: CountingOrigin, edge: Edge, autojump_clock: trio.testing.MockClock
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    held = await RawClient.connect(edge.url)  # parked before the edge goes dark
    await held.send_raw(get(f"/live/s1/hi/index.m3u8?_HLS_msn={feed.hi.position.last_msn + 1}"))
    await parked(edge, 1)
    edge.set_fault("blackhole")
    client = await RawClient.connect(edge.url)  # the connection is accepted
    await client.send_raw(get("/healthz") + get("/live/s1/master.m3u8"))
    feed.parts(3)  # the origin answers the held fetch: the edge stays silent
    with trio.move_on_after(10):  # mock time: nothing comes back however long we wait
        await client.response()
        raise AssertionError("a blackholed edge answered")
    with trio.move_on_after(10):
        await held.response()
        raise AssertionError("a blackholed edge answered a held request")
    assert sum(origin.counts.values()) == 1  # the held fetch only
    edge.set_fault(None)  # restored: the requests go on
    first, second = await client.response(), await client.response()
    assert first is not None and first[0].status_code == 200
    assert second is not None and second[0].status_code == 200
    answer = await held.response()
    assert answer is not None and answer[0].status_code == 200
    for raw in (client, held):
        await raw.aclose()
    assert edge.fault is None


async def test_shutdown_answers_parked_viewers(origin: CountingOrigin) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    shutdown = trio.Event()
    async with open_edge("a1", origin.url, shutdown=shutdown) as edge:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{edge.url}/live/s1/hi/index.m3u8")
        hint = m3u8.loads(r.text).preload_hint.uri
        msn, part = (int(x) for x in hint.split(".")[:2])
        got: list[tuple[int, bytes]] = []

        async def viewer(path: str) -> None:
            client = await RawClient.connect(edge.url)
            await client.send_raw(get(path))
            answer = await client.response()
            assert answer is not None
            got.append((answer[0].status_code, answer[1]))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(viewer,
                                       f"/live/s1/hi/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")
                    # the segment after the next: the origin holds it past the grace
                    nursery.start_soon(viewer, f"/live/s1/hi/index.m3u8?_HLS_msn={msn + 1}")
                await parked(edge, 40)
                await parked_at_origin(origin, 2)
                shutdown.set()  # draining: parked viewers keep waiting, up to the grace
                await trio.testing.wait_all_tasks_blocked()
                assert not got
                feed.parts(1)  # the reload's part lands within the grace
    statuses = sorted(status for status, _ in got)
    assert statuses == [200] * 20 + [503] * 20
    assert b"edge shutting down; retry\n" in {body for status, body in got if status == 503}
