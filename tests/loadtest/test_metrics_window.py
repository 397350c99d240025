"""The load run's /metrics figures from canned scrapes: exact over the players' window,
and None with the reason when the target cannot say (never a made-up value)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import trio
import trio.testing

from loadtest.metrics_window import FIELDS, MetricsWindow

URL = "http://127.0.0.1:9/metrics"
STREAM = "s1"


def exposition(*, part: int = 0, other: int = 0, hits: int = 0, misses: int = 0,
               behind_s: float | None = None, shed: int = 0) -> str:
    lines = ["# TYPE streamscale_origin_requests counter"]
    lines += [f'streamscale_origin_requests_total{{kind="{k}"}} {v}'
              for k, v in (("part", part), ("other", other), ("master", 0))]
    lines += ["# TYPE streamscale_edge_hits counter",
              f'streamscale_edge_hits_total{{edge="a1",cdn="a"}} {hits}',
              "# TYPE streamscale_edge_misses counter",
              f'streamscale_edge_misses_total{{edge="a1",cdn="a"}} {misses}']
    if behind_s is not None:
        lines += ["# TYPE streamscale_transcode_behind_seconds gauge",
                  f'streamscale_transcode_behind_seconds{{stream="{STREAM}"}} {behind_s}',
                  'streamscale_transcode_behind_seconds{stream="other"} 99',
                  "# TYPE streamscale_transcode_shed_rungs gauge",
                  f'streamscale_transcode_shed_rungs{{stream="{STREAM}"}} {shed}']
    return "\n".join(lines) + "\n"


def canned(*answers: tuple[int, str]) -> httpx.AsyncClient:
    """A client whose GETs get `answers` in order (the last one repeated)."""
    queue: Iterator[tuple[int, str]] = iter(answers)
    last = answers[-1]

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal last
        last = next(queue, last)
        return httpx.Response(last[0], text=last[1])

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def run_window(client: httpx.AsyncClient, seconds: float) -> MetricsWindow:
    """Start, sample once a (virtual) second for `seconds`, finish."""
    window = MetricsWindow(URL, STREAM)
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(window.run, client, done)
        await trio.sleep(seconds)  # the Locust run, in virtual time
        await window.finish(client)
        done.set()
    return window


async def test_figures_cover_the_seconds_players_fetched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client = canned(
        (200, exposition(behind_s=0.1)),  # t=0: the start scrape
        (200, exposition(other=2, behind_s=0.1)),  # t=1: Locust starting; a probe
        (200, exposition(part=10, other=2, hits=5, misses=5, behind_s=0.2)),  # t=2
        (200, exposition(part=20, other=2, hits=15, misses=10, behind_s=0.9, shed=1)),
        (200, exposition(part=20, other=3, hits=15, misses=10, behind_s=0.3)),  # end
    )
    async with client:
        window = await run_window(client, 3.5)
    figures = window.figures()
    # players fetched between t=1 (edge counts last at their start) and t=3
    assert figures["locust_window_s"] == pytest.approx(2.0)
    assert figures["metrics_scrapes"] == 5
    assert figures["origin_requests_per_s"] == pytest.approx(10.0)
    assert figures["origin_requests_by_kind_per_s"] == pytest.approx(
        {"master": 0, "playlist": 0, "blocking": 0, "part": 10.0, "segment": 0, "init": 0,
         "other": 0})
    assert figures["edge_hit_ratio"] == pytest.approx(15 / 25)
    assert figures["transcode_lag_max_s"] == pytest.approx(0.9)
    assert figures["transcode_lag_p95_s"] == pytest.approx(0.9)  # nearest rank of 5
    assert figures["shed_rungs_max"] == 1
    notes = window.notes()
    assert all(not notes[name].startswith("not measured") for name in FIELDS)
    assert "2.0 s in which players fetched" in notes["locust_window_s"]


async def test_a_target_without_metrics_gives_none_and_says_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with canned((404, "not found")) as client:
        window = await run_window(client, 2.5)
    figures, notes = window.figures(), window.notes()
    assert all(figures[name] is None for name in FIELDS)
    assert figures["locust_window_s"] is None
    for name in FIELDS:
        assert notes[name].startswith("not measured: "), name
        assert "HTTP 404" in notes[name], name


async def test_services_in_other_processes_are_named_as_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gateway_only = "# TYPE streamscale_api_requests counter\nstreamscale_api_requests_total 1\n"
    async with canned((200, gateway_only)) as client:
        window = await run_window(client, 2.5)
    figures, notes = window.figures(), window.notes()
    assert all(figures[name] is None for name in FIELDS)
    assert figures["locust_window_s"] == pytest.approx(2.5)  # the whole window
    assert "origin runs in another process" in notes["origin_requests_per_s"]
    assert "edges in another process" in notes["edge_hit_ratio"]
    assert "media node runs in another process" in notes["transcode_lag_p95_s"]


async def test_a_platform_without_edge_traffic_has_no_hit_ratio(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with canned((200, exposition()), (200, exposition(part=4))) as client:
        window = await run_window(client, 2.0)
    figures = window.figures()
    assert figures["edge_hit_ratio"] is None
    assert figures["origin_requests_per_s"] == pytest.approx(2.0)  # 4 in 2 s
    assert window.notes()["edge_hit_ratio"] == (
        "not measured: no edge served a request in the window")
