"""nginx with the shipped edge configuration in front of the real origin, unchanged: one
origin request per object however many viewers ask at once (segments, preload-hinted
parts, blocking reloads), CMCD and other per-player parameters do not split the cache,
blocking reloads for different parts are different objects.

Real nginx (installed by `./dev test`), run unprivileged in a temp prefix."""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs

import m3u8
import pytest
import trio

from streamscale.cli import main as cli_main
from streamscale.services.cdn.nginx import (
    NginxEdge,
    NginxEdgeSettings,
    NginxError,
    find_nginx,
    serve_nginx_edge,
)

from ..origin.streams import LiveFeeder, RawClient, get, header
from .conftest import CountingOrigin, parked_at_origin

VIEWERS = 50  # per object: 150 connections parked in nginx at once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def prefix() -> Iterator[Path]:
    """nginx's prefix: under /tmp (pytest's tmp_path is not reachable by `nobody`)."""
    path = Path(tempfile.mkdtemp(prefix="streamscale-nginx-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@asynccontextmanager
async def open_nginx(origin_url: str, prefix: Path) -> AsyncIterator[NginxEdge]:
    settings = NginxEdgeSettings(origin_url=origin_url, prefix=prefix, port=free_port(),
                                 origin_hold_s=10)
    async with trio.open_nursery() as nursery:
        edge: NginxEdge = await nursery.start(partial(serve_nginx_edge, settings))
        try:
            yield edge
        finally:
            nursery.cancel_scope.cancel()


@pytest.fixture
async def nginx(origin: CountingOrigin, prefix: Path) -> AsyncIterator[NginxEdge]:
    async with open_nginx(origin.url, prefix) as edge:
        yield edge


async def fetch(base_url: str, path: str) -> tuple[int, bytes, dict[bytes, bytes]]:
    client = await RawClient.connect(base_url)
    await client.send_raw(get(path))
    answer = await client.response()
    await client.aclose()
    assert answer is not None
    return answer[0].status_code, answer[1], {k: bytes(v) for k, v in answer[0].headers}


def origin_requests(origin: CountingOrigin, path: str, **hls: str) -> int:
    """Requests that reached the origin for `path` with these _HLS_* values (whatever
    else their query held: nginx forwards the first viewer's query as it came)."""
    total = 0
    for target, count in origin.counts.items():
        got_path, _, query = target.decode().partition("?")
        params = {k: v[0] for k, v in parse_qs(query).items() if k.startswith("_HLS_")}
        if got_path == path and params == {f"_HLS_{k}": v for k, v in hls.items()}:
            total += count
    return total


async def writing(nginx: NginxEdge) -> int:
    """Requests nginx is answering now (stub_status), this one excluded."""
    status, body, _ = await fetch(nginx.url, "/nginx_status")
    assert status == 200
    match = re.search(rb"Writing: (\d+)", body)
    assert match is not None
    return int(match[1]) - 1


async def served(nginx: NginxEdge) -> int:
    """Requests nginx has answered so far (stub_status), this one included."""
    status, body, _ = await fetch(nginx.url, "/nginx_status")
    assert status == 200
    return int(body.splitlines()[2].split()[2])  # " accepts handled requests" line


async def test_parked_viewers_cost_one_origin_request_per_object(
    origin: CountingOrigin, nginx: NginxEdge
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    status, playlist, _ = await fetch(nginx.url, "/live/s1/hi/index.m3u8")
    assert status == 200
    hint = m3u8.loads(playlist.decode()).preload_hint.uri
    msn, part = (int(x) for x in hint.split(".")[:2])
    segment = f"/live/s1/hi/{msn}.m4s"  # being made: the origin holds it
    hinted = f"/live/s1/hi/{msn}.{part}.m4s"
    reload = f"/live/s1/hi/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    got: dict[str, list[tuple[int, bytes]]] = {segment: [], hinted: [], reload: []}

    async def viewer(client: RawClient, path: str, i: int) -> None:
        sep = "&" if "?" in path else "?"
        await client.send_raw(get(f"{path}{sep}CMCD=sid%3D%22v{i}%22"))
        answer = await client.response()
        await client.aclose()
        assert answer is not None
        got[path].append((answer[0].status_code, answer[1]))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for path in got:
                for i in range(VIEWERS):
                    nursery.start_soon(viewer, await RawClient.connect(nginx.url), path, i)
            while await writing(nginx) < 3 * VIEWERS:  # every viewer's request is in nginx
                pass
            await parked_at_origin(origin, 3)  # one held request per object reached it
            assert not any(got.values())
            feed.parts(1)  # the hinted part: the reload and the part are answered
            feed.seconds(msn + 1.1)  # the next keyframe closes the segment
    for path, answers in got.items():
        assert len(answers) == VIEWERS, path
        assert {status for status, _ in answers} == {200}, path
        assert len({body for _, body in answers}) == 1, path
    assert origin_requests(origin, segment) == 1
    assert origin_requests(origin, hinted) == 1
    assert origin_requests(origin, "/live/s1/hi/index.m3u8", msn=str(msn), part=str(part)) == 1
    rendition = origin.registry.lookup("s1").get("hi")  # type: ignore[union-attr]
    assert got[segment][0][1] == rendition.segment(msn)[1]
    assert got[hinted][0][1] == rendition.part(msn, part)[1]
    assert origin.routes.edge_headers.keys() == {b"nginx"}  # edge fetches, not viewers


async def test_query_keys_only_what_the_origin_acts_on(
    origin: CountingOrigin, nginx: NginxEdge
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(2.5)  # segments 0 and 1 closed
    bodies = set()
    for query in ("?CMCD=sid%3D%22a%22", "?CMCD=sid%3D%22b%22%2Cbr%3D400", "", "?token=x"):
        status, body, headers = await fetch(nginx.url, f"/live/s1/hi/0.m4s{query}")
        assert status == 200
        assert headers[b"access-control-allow-origin"] == b"*"  # CORS passes through
        assert b"immutable" in headers[b"cache-control"]
        bodies.add(body)
    assert len(bodies) == 1
    assert origin_requests(origin, "/live/s1/hi/0.m4s") == 1

    playlist = "/live/s1/hi/index.m3u8"
    for query in ("?_HLS_msn=1&_HLS_part=0", "?_HLS_msn=1&_HLS_part=1",
                  "?_HLS_msn=1&_HLS_part=0&CMCD=sid%3D%22c%22", "?_HLS_msn=2&_HLS_part=0",
                  "?_HLS_part=1&_HLS_msn=1"):
        status, body, headers = await fetch(nginx.url, playlist + query)
        assert status == 200
        assert headers[b"cache-control"] == b"public, max-age=30"
    assert origin_requests(origin, playlist, msn="1", part="0") == 1
    assert origin_requests(origin, playlist, msn="1", part="1") == 1
    assert origin_requests(origin, playlist, msn="2", part="0") == 1


async def test_health_errors_and_preflight_pass_through(
    origin: CountingOrigin, nginx: NginxEdge
) -> None:
    LiveFeeder(origin.registry).seconds(1.2)
    assert (await fetch(nginx.url, "/healthz"))[:2] == (200, b"ok\n")
    status, body, headers = await fetch(nginx.url, "/live/s1/nope/index.m3u8")
    assert (status, body) == (404, b"unknown rendition\n")
    assert headers[b"cache-control"] == b"max-age=1"  # cached briefly, as the origin says
    client = await RawClient.connect(nginx.url)
    await client.send_raw(b"OPTIONS /live/s1/hi/0.m4s HTTP/1.1\r\nHost: edge\r\n"
                          b"Origin: http://player\r\nAccess-Control-Request-Method: GET\r\n\r\n")
    answer = await client.response("OPTIONS")
    await client.aclose()
    assert answer is not None and answer[0].status_code == 204
    assert header(answer[0], b"access-control-allow-origin") == b"*"


async def test_a_stampede_for_a_missing_object_costs_one_origin_request(
    origin: CountingOrigin, nginx: NginxEdge
) -> None:
    """The origin's 404 says max-age=1: nginx keeps it, so viewers asking for a segment
    that will never exist do not each reach the origin (without caching, every waiter
    on the lock would go upstream once the first answer came back uncacheable)."""
    LiveFeeder(origin.registry).seconds(1.2)
    answers: list[int] = []

    async def viewer() -> None:
        answers.append((await fetch(nginx.url, "/live/s1/hi/99.m4s"))[0])

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(viewer)
    assert answers == [404] * 20
    assert origin_requests(origin, "/live/s1/hi/99.m4s") == 1


@pytest.mark.browser
@pytest.mark.slow
async def test_hls_js_plays_live_through_nginx(tmp_path: Path, prefix: Path) -> None:
    """hls.js (default config) in Chromium plays a stream that ffmpeg publishes, through
    nginx with the shipped configuration: the picture advances and the player stays near
    the live edge, within the same bound as on the origin (tests/browser/test_playback)."""
    from browser.conftest import _started, start_publisher, wait_for_master
    from browser.test_playback import assert_advancing, assert_near_live_edge, playing, watch

    from streamscale.config import MediaConfig
    from streamscale.services.media import MediaHub
    from streamscale.testing import make_config, running_platform
    from streamscale.testing.browser import open_browser

    config = make_config(tmp_path)
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=1.0, ladder="source",
        shed_sustain_s=3600.0, restore_after_s=3600.0))
    async with running_platform(config, ("gateway", "media", "origin")) as platform, \
            open_browser() as browser, trio.open_nursery() as nursery:
        hub = platform.handle("media", "hub")
        assert isinstance(hub, MediaHub)
        stream = await _started(platform, hub)
        origin_url = platform.url("origin", "hls")
        edge = await nursery.start(partial(serve_nginx_edge, NginxEdgeSettings(
            origin_url=origin_url, prefix=prefix, port=free_port())))
        publisher = await start_publisher(nursery, stream.publish_url, 60)
        await wait_for_master(stream.master_url, rungs=1)
        assert stream.master_url.startswith(origin_url)
        player = await browser.open_player(
            stream.master_url.replace(origin_url, edge.url))
        first = await playing(player)
        states = await watch(player, 12)
        assert_advancing([first, *states])
        assert_near_live_edge(states[3:])  # after hls.js has settled on the edge
        assert await served(edge) > 2 * len(states)  # playlists and parts, through nginx
        publisher.terminate()
        nursery.cancel_scope.cancel()


async def test_cli_renders_a_configuration_nginx_accepts(
    prefix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["cdn", "nginx-config", "--origin", "http://127.0.0.1:8082",
                     "--port", "18090", "--prefix", str(prefix)]) == 0
    conf = prefix / "nginx.conf"
    conf.write_text(capsys.readouterr().out)
    (prefix / "cache").mkdir()
    result = await trio.run_process(
        [find_nginx(), "-t", "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
        capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    text = conf.read_text()
    assert "proxy_cache_lock on;" in text and "x-streamscale-edge nginx;" in text

    assert cli_main(["cdn", "nginx-config", "--origin", "http://127.0.0.1:8082/path",
                     "--port", "18090", "--prefix", str(prefix)]) == 2
    assert "origin URL must be http://host:port" in capsys.readouterr().err


async def test_nginx_that_cannot_start_is_a_clear_error(prefix: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = NginxEdgeSettings(origin_url="http://127.0.0.1:9", prefix=prefix,
                                     port=taken.getsockname()[1])
        with pytest.raises(NginxError, match="Address already in use"):
            await serve_nginx_edge(settings)  # it never reports ready: it raises


def test_settings_refuse_bad_values(prefix: Path) -> None:
    with pytest.raises(ValueError, match="port"):
        NginxEdgeSettings(origin_url="http://o:1", prefix=prefix, port=0)
    with pytest.raises(ValueError, match="edge name"):
        NginxEdgeSettings(origin_url="http://o:1", prefix=prefix, edge_name="a b;")
    with pytest.raises(ValueError, match="paths may not"):
        NginxEdgeSettings(origin_url="http://o:1", prefix=prefix / "x y")
