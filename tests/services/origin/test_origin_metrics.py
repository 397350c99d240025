"""The origin's `/metrics` on its own listener: requests by kind, answers by status class,
bytes sent and admission refusals move by exactly what the test sent."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from streamscale.config import CdnConfig, EdgeConfig
from streamscale.runtime import open_resources
from streamscale.services.cdn.health import CdnHealth
from streamscale.services.cdn.steering import Steering
from streamscale.services.origin import Admission, MediaRegistry, serve_origin
from streamscale.testing import make_config
from streamscale.testing.metrics import Scrape, scrape

from .conftest import origin_client
from .streams import LiveFeeder

EDGE = {"x-streamscale-edge": "a1"}


async def test_requests_are_counted_by_kind_status_and_bytes(tmp_path: Path) -> None:
    cdn = CdnConfig(edges=(EdgeConfig(name="a1", cdn="a", port=9001),),
                    origin_viewer_limit=1, origin_session_idle_s=60)
    admission = Admission(cdn.origin_viewer_limit, cdn.origin_session_idle_s)
    steering = Steering(CdnHealth(cdn, resolve=lambda edge: f"http://{edge.name}.test"))
    registry, shutdown = MediaRegistry(), trio.Event()
    async with open_resources(make_config(tmp_path)), trio.open_nursery() as nursery:
        url: str = await nursery.start(partial(
            serve_origin, registry, tmp_path, host="127.0.0.1", port=0, shutdown=shutdown,
            steering=steering, admission=admission))
        steering.origin_url = url
        feed = LiveFeeder(registry)
        feed.seconds(2.5)
        async with origin_client(url) as client:
            first = await client.get("/metrics")
            before = Scrape.parse(first.text)
            sent = len(first.content)  # counted once its answer is made

            async def get(path: str, status: int, **kw: object) -> None:
                nonlocal sent
                r = await client.get(path, **kw)  # type: ignore[arg-type]
                assert r.status_code == status, (path, r.text)
                sent += len(r.content)

            for path in ("master.m3u8", "hi/index.m3u8", "hi/classic.m3u8",
                         "hi/index.m3u8?_HLS_msn=1&_HLS_part=0",  # there already: at once
                         "hi/init.mp4", "hi/1.m4s", "hi/1.0.m4s", "hi/1.1.m4s"):
                await get(f"/live/s1/{path}", 200, headers=EDGE)
            await get("/live/s1/hi/999.m4s", 404, headers=EDGE)  # never made
            await get("/nowhere", 404)  # "other"
            # direct viewers: the first takes the one slot, the second is refused
            await get("/live/s1/hi/init.mp4", 200, params={"CMCD": 'sid="v1"'})
            await get("/live/s1/hi/init.mp4", 503, params={"CMCD": 'sid="v2"'})
            after = await scrape(client, "/metrics")
        shutdown.set()

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    kinds = {k: moved("streamscale_origin_requests_total", kind=k) for k in (
        "master", "playlist", "blocking", "part", "segment", "init", "other")}
    # the refused viewer never reached a route: "other", with /nowhere and the first scrape
    assert kinds == {"master": 1, "playlist": 2, "blocking": 1, "part": 2, "segment": 2,
                     "init": 2, "other": 3}
    assert {code: moved("streamscale_origin_responses_total", code=code)
            for code in ("1xx", "2xx", "3xx", "4xx", "5xx")} == {
        "1xx": 0, "2xx": 10, "3xx": 0, "4xx": 2, "5xx": 1}
    assert moved("streamscale_origin_sent_bytes_total") == sent
    assert moved("streamscale_origin_admission_refused_total") == 1
    assert after.value("streamscale_origin_direct_sessions") == 1
    assert after.value("streamscale_origin_blocking_reloads_parked") == 0
    assert after.families["streamscale_origin_requests"] == "counter"


async def test_without_the_runtime_metrics_is_not_found(tmp_path: Path) -> None:
    registry, shutdown = MediaRegistry(), trio.Event()
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(partial(
            serve_origin, registry, None, host="127.0.0.1", port=0, shutdown=shutdown))
        async with origin_client(url) as client:
            r = await client.get("/metrics")
            assert r.status_code == 404 and "not run by the streamscale runtime" in r.text
            with pytest.raises(httpx.HTTPStatusError):
                await scrape(client, "/metrics")
        shutdown.set()


def test_a_scrape_parses_with_prometheus_parser() -> None:
    text = ('# HELP x_total x\n# TYPE x_total counter\nx_total{kind="a"} 2.0\n'
            'x_total{kind="b"} 3.0\n')
    parsed = Scrape.parse(text)
    assert parsed.value("x_total") == 5 and parsed.value("x_total", kind="b") == 3
