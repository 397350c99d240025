"""The gateway's `GET /metrics`: every collector of the process, API requests counted by
route template and status class with a latency histogram, kept out of the OpenAPI
document and the /api error paths."""

from __future__ import annotations

from pathlib import Path

import httpx

from streamscale.testing import make_config, running_platform
from streamscale.testing.metrics import Scrape, scrape

from ..helpers import assert_error

N = 7
HEALTH = {"method": "GET", "route": "/api/health"}


async def test_api_requests_are_counted_by_route_and_status(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_platform(config, ("gateway", "origin", "edge")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as api:
        before = await scrape(api, "/metrics")
        for _ in range(N):
            assert (await api.get("/api/health")).status_code == 200
        for i in range(3):  # one route template, whatever the id
            assert_error(await api.get(f"/api/streams/{i:032x}"), 404)
        assert_error(await api.get("/api/no/such/route"), 404, "not_found")
        r = await api.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=")
        assert r.headers["cache-control"] == "no-store"
        after = Scrape.parse(r.text)
        spec = (await api.get("/api/openapi.json")).json()

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("streamscale_api_requests_total", code="2xx", **HEALTH) == N
    assert moved("streamscale_api_request_seconds_count", **HEALTH) == N
    assert moved("streamscale_api_request_seconds_bucket", le="+Inf", **HEALTH) == N
    assert moved("streamscale_api_request_seconds_sum", **HEALTH) > 0
    streams = [labels for labels, _ in after.matching("streamscale_api_requests_total",
                                                      method="GET", code="4xx")]
    assert {labels["route"] for labels in streams} == {"/api/streams/<id:stream_id>",
                                                       "unmatched"}
    assert after.value("streamscale_api_requests_total", route="unmatched") == 1
    # the scrape before: counted once it was answered
    assert after.value("streamscale_api_requests_total", route="/metrics") == 1
    # every service of the process reports here
    assert after.value("streamscale_edge_requests_total", edge="a1") == 0
    assert "streamscale_origin_requests_total" in after
    assert after.families["streamscale_api_request_seconds"] == "histogram"
    assert "/metrics" not in spec["paths"]


async def test_metrics_refuses_other_methods_in_the_error_shape(tmp_path: Path) -> None:
    async with running_platform(make_config(tmp_path)) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api")) as api:
        assert_error(await api.post("/metrics", json={}), 405, "method_not_allowed")
