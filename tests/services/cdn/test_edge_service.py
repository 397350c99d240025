"""The edge service as `streamscale up` runs it: every configured edge, shields first."""

from __future__ import annotations

from pathlib import Path

import httpx

from streamscale.config import CdnConfig, EdgeConfig
from streamscale.services.cdn.edge import Edge
from streamscale.testing import make_config, running_platform


async def test_service_starts_every_edge_with_shields_first(tmp_path: Path) -> None:
    config = make_config(tmp_path, cdn=CdnConfig(edges=(
        EdgeConfig(name="a1", cdn="a", upstream="shield"),  # listed before its shield
        EdgeConfig(name="shield", cdn="a"),
        EdgeConfig(name="b1", cdn="b"),
    )))
    async with running_platform(config, ("origin", "edge")) as platform:
        edges = platform.handle("edge", "edges")
        assert isinstance(edges, dict) and set(edges) == {"a1", "shield", "b1"}
        origin = platform.url("origin", "hls")
        async with httpx.AsyncClient(timeout=10) as client:
            for name, edge in edges.items():
                assert isinstance(edge, Edge)
                assert platform.url("edge", name) == edge.url
                r = await client.get(f"{edge.url}/healthz")
                assert r.status_code == 200 and r.text == "ok\n"
            # through a1 -> shield -> origin: the origin's own 404 comes back
            r = await client.get(f"{edges['a1'].url}/live/nope/master.m3u8")
            assert r.status_code == 404 and r.text == "unknown stream\n"
            assert r.headers["x-cache"] == "MISS"
            assert edges["shield"].stats.upstream_requests == 1
            assert edges["b1"].stats.upstream_requests == 0
            direct = await client.get(f"{origin}/live/nope/master.m3u8")
            assert direct.status_code == 404
