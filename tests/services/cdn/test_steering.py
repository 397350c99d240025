"""Content steering: CDN health from probes, PATHWAY-PRIORITY as health changes, and the
steered master (every variant once per pathway) that a strict HLS parser accepts."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import cast

import pytest
import trio
import trio.testing

from streamscale.backends.storage import Store
from streamscale.config import CdnConfig, Config, ConfigError, EdgeConfig, OriginConfig
from streamscale.runtime import open_resources
from streamscale.services.cdn.health import CdnHealth
from streamscale.services.cdn.steering import ORIGIN_PATHWAY, Steering
from streamscale.services.origin import MediaRegistry
from streamscale.services.streaming import StreamService
from streamscale.testing.hls_validate import validate

from ..origin.streams import LiveFeeder

EDGES = (
    EdgeConfig(name="a1", cdn="a", port=9001),
    EdgeConfig(name="a2", cdn="a", port=9002),
    EdgeConfig(name="b1", cdn="b", port=9003),
)
CDN = CdnConfig(edges=EDGES, health_interval_s=1.0, health_timeout_s=0.5, health_failures=2,
                steering_ttl_s=3)
ORIGIN = "http://origin.test:8081"


def fixed_urls(edge: EdgeConfig) -> str:
    return f"http://{edge.name}.test"


def health(cdn: CdnConfig = CDN, **kwargs: object) -> CdnHealth:
    return CdnHealth(cdn, resolve=fixed_urls, **kwargs)  # type: ignore[arg-type]


def up(h: CdnHealth) -> tuple[str, ...]:
    return h.up  # a call: mypy does not narrow it across awaits


def fail(h: CdnHealth, *edges: str, rounds: int = 1) -> None:
    """`rounds` probe rounds in which `edges` fail and the others answer."""
    for _ in range(rounds):
        h.record({e.name: e.name not in edges for e in EDGES})


def test_priority_follows_health() -> None:
    h = health()
    steering = Steering(h, ORIGIN)
    assert steering.priority() == ["a", "b", ORIGIN_PATHWAY]  # before any probe: up
    fail(h, "a1", "a2")
    assert steering.priority() == ["a", "b", ORIGIN_PATHWAY]  # one failure is not down
    fail(h, "a1", "a2")
    assert steering.priority() == ["b", "a", ORIGIN_PATHWAY]  # down: after those up
    fail(h, "a1", "a2", "b1", rounds=2)
    assert steering.priority() == [ORIGIN_PATHWAY, "a", "b"]  # every CDN down
    assert h.first_up() is None
    fail(h)  # one good probe brings an edge (and its CDN) back
    assert steering.priority() == ["a", "b", ORIGIN_PATHWAY]
    assert h.first_up() == ("a", "http://a1.test")


def test_a_cdn_is_down_only_when_every_edge_is() -> None:
    h = health()
    fail(h, "a1", rounds=5)
    assert h.up == ("a", "b")
    fail(h, "a1", "a2", rounds=1)  # a2's first failure
    assert h.is_up("a")
    fail(h, "a1", "a2", rounds=1)
    assert not h.is_up("a")


def test_version_bumps_only_on_a_change() -> None:
    h = health()
    version = h.version
    fail(h, rounds=3)
    assert h.version == version
    fail(h, "b1", rounds=2)
    assert h.version == version + 1
    fail(h, "b1", rounds=2)
    assert h.version == version + 1


def test_a_cdn_without_a_reachable_entry_edge_is_no_pathway() -> None:
    """Edges on port 0 that this process did not start have no URL: without any, steering
    is inactive (the origin serves the plain master)."""
    cdn = CdnConfig(edges=(EdgeConfig(name="a1", cdn="a"), EdgeConfig(name="b1", cdn="b")))
    h = CdnHealth(cdn)
    assert h.pathways == ()
    assert not Steering(h, ORIGIN).active
    assert Steering(h, ORIGIN).priority() == [ORIGIN_PATHWAY]


async def test_an_edge_started_in_this_process_is_found_by_its_bound_url(
    tmp_path: Path,
) -> None:
    """Port-0 edges become pathways once the edge service reports where it listens."""
    cdn = CdnConfig(edges=(EdgeConfig(name="a1", cdn="a"), EdgeConfig(name="b1", cdn="b")))
    async with open_resources(Config(data_dir=tmp_path, cdn=cdn)) as resources:
        h = CdnHealth(cdn)
        assert not h.pathways
        resources.started_urls["edge"] = {"b1": "http://127.0.0.1:5555/"}
        probed: list[str] = []

        async def probe(url: str) -> bool:
            probed.append(url)
            return True

        await h.probe_round(probe)
        assert h.pathways == (("b", "http://127.0.0.1:5555"),)
        assert probed == ["http://127.0.0.1:5555"] and h.first_up() == h.pathways[0]


def test_a_cdn_named_origin_is_refused() -> None:
    cdn = CdnConfig(edges=(EdgeConfig(name="o1", cdn=ORIGIN_PATHWAY, port=9001),))
    with pytest.raises(ConfigError, match="origin"):
        Steering(health(cdn), ORIGIN)


def test_steering_manifest() -> None:
    h = health()
    steering = Steering(h, ORIGIN)
    body = steering.manifest("s1")
    assert json.loads(body) == {
        "VERSION": 1, "TTL": 1, "RELOAD-URI": f"{ORIGIN}/steering/s1.json",
        "PATHWAY-PRIORITY": ["a", "b", ORIGIN_PATHWAY],
    }
    assert steering.manifest("s1") is body  # built once per health state
    assert steering.hold_s == 2.0  # TTL 1 s + a 2 s hold: a reload every 3 s (steering_ttl_s)
    fail(h, "a1", "a2", rounds=2)
    assert json.loads(steering.manifest("s1"))["PATHWAY-PRIORITY"] == ["b", "a", "origin"]


def test_steered_master_lists_every_variant_per_pathway() -> None:
    registry = MediaRegistry()
    feed = LiveFeeder(registry)
    feed.seconds(1.5)
    h = health()
    steering = Steering(h, ORIGIN)
    master = steering.master("s1", feed.presentation, low_latency=True)
    summary = validate(master, label="steered master")
    uris = [v["uri"] for v in summary["variants"]]
    assert uris == [f"{base}/live/s1/{r}/index.m3u8"
                    for base in ("http://a1.test", "http://b1.test", ORIGIN)
                    for r in ("hi", "lo")]
    text = master.decode()
    pathways = [line.rpartition("PATHWAY-ID=")[2] for line in text.splitlines()
                if line.startswith("#EXT-X-STREAM-INF")]
    assert pathways == ['"a"', '"a"', '"b"', '"b"', '"origin"', '"origin"']
    assert ('#EXT-X-CONTENT-STEERING:SERVER-URI="http://origin.test:8081/steering/s1.json",'
            'PATHWAY-ID="a"') in text
    assert text.count('STABLE-VARIANT-ID="hi"') == 3
    assert steering.master("s1", feed.presentation, low_latency=True) is master  # cached

    fail(h, "a1", "a2", rounds=2)  # the default pathway follows health
    again = steering.master("s1", feed.presentation, low_latency=True).decode()
    assert 'CONTENT-STEERING:SERVER-URI="http://origin.test:8081/steering/s1.json",' \
           'PATHWAY-ID="b"' in again
    fail(h, "a1", "a2", "b1", rounds=2)
    classic = steering.master("s1", feed.presentation, low_latency=False)
    validate(classic, label="steered classic master")
    assert b'PATHWAY-ID="origin"\n' in classic.split(b"#EXT-X-STREAM-INF")[0]
    assert b"/classic.m3u8" in classic


def test_playback_url_names_the_first_cdn_up() -> None:
    """The gateway's playback URL: the master on the first CDN up's entry edge, the
    origin's when every CDN is down."""
    h = health()
    config = Config(cdn=CDN, origin=OriginConfig(public_url=ORIGIN))
    streams = StreamService(cast(Store, None), config, cdn_health=h)
    assert streams.playback_url("s1") == "http://a1.test/live/s1/master.m3u8"
    fail(h, "a1", "a2", rounds=2)
    assert streams.playback_url("s1") == "http://b1.test/live/s1/master.m3u8"
    fail(h, "a1", "a2", "b1", rounds=2)
    assert streams.playback_url("s1") == f"{ORIGIN}/live/s1/master.m3u8"
    assert StreamService(cast(Store, None), config).playback_url("s1") == (
        f"{ORIGIN}/live/s1/master.m3u8")


async def test_prober_marks_down_and_up(autojump_clock: trio.testing.MockClock) -> None:
    """The real prober loop on a mock clock: a refused edge and a blackholed one (never
    answers: the probe times out) are down after `health_failures` rounds; a good probe
    brings each back."""
    state = {"http://a1.test": "ok", "http://a2.test": "ok", "http://b1.test": "ok"}
    probed: list[tuple[float, str]] = []

    async def probe(url: str) -> bool:
        probed.append((trio.current_time(), url))
        if state[url] == "blackhole":
            await trio.sleep_forever()
        return state[url] == "ok"

    h = health(probe=probe)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(h.run, shutdown=shutdown))
        assert h.rounds == 1 and up(h) == ("a", "b")
        start = trio.current_time()
        state["http://b1.test"] = "refused"
        version = await h.wait_for_change(h.version)
        assert up(h) == ("a",) and version == h.version
        # down after the round at +1 s (the first failure) and the one at +2 s
        assert math.isclose(trio.current_time() - start, 2.0, abs_tol=0.01)

        state["http://a1.test"] = state["http://a2.test"] = "blackhole"
        start = trio.current_time()
        await h.wait_for_change(h.version)
        assert up(h) == ()
        # rounds at +1 and +2 s, each failing at its 0.5 s timeout
        assert math.isclose(trio.current_time() - start, 2.5, abs_tol=0.01)

        state["http://a2.test"] = "ok"
        await h.wait_for_change(h.version)
        assert up(h) == ("a",)
        shutdown.set()
    assert len({url for _, url in probed}) == 3


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)
