"""ViewerCounts and UniqueSessions on an injected clock: no I/O, no real time."""

from __future__ import annotations

import random

import pytest

from streamscale.services.analytics import UniqueSessions, ViewerCounts
from streamscale.services.analytics.unique import EXACT_MAX, STANDARD_ERROR
from streamscale.services.cdn.records import SessionUsage, UsageBatch, UsageRecorder

IDLE_S = 10.0


class Clock:
    def __init__(self, now_s: float = 1_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def usage(session: str, last_s: float, rendition: str = "720p", nbytes: int = 1000,
          requests: int = 1) -> SessionUsage:
    return SessionUsage(session=session, rendition=rendition, requests=requests,
                        bytes=nbytes, last_s=last_s)


def batch(*sessions: SessionUsage, stream: str = "s1", source: str = "a1") -> UsageBatch:
    return UsageBatch(source=source, cdn=source[:1], stream_id=stream, start_s=0.0,
                      end_s=1.0, sessions=sessions)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def counts(clock: Clock) -> ViewerCounts:
    return ViewerCounts(idle_s=IDLE_S, clock=clock)


def test_a_session_seen_on_two_edges_counts_once(counts: ViewerCounts, clock: Clock) -> None:
    now = clock.now_s
    counts.apply(batch(usage("v1", now - 1), usage("v2", now - 1), source="a1"))
    counts.apply(batch(usage("v1", now - 0.5), usage("v3", now), source="b1"))
    [snap] = counts.sample()
    assert (snap.stream_id, snap.concurrent, snap.unique_viewers) == ("s1", 3, 3)
    assert snap.bytes == 4000


def test_idle_sessions_leave_and_an_empty_stream_reports_zero_once(
    counts: ViewerCounts, clock: Clock
) -> None:
    t0 = clock.now_s
    counts.apply(batch(usage("v1", t0), usage("v2", t0)))
    clock.now_s = t0 + 5
    counts.apply(batch(usage("v2", t0 + 5)))
    clock.now_s = t0 + IDLE_S + 1  # v1 idle past IDLE_S, v2 not
    [snap] = counts.sample()
    assert (snap.concurrent, snap.unique_viewers, snap.final) == (1, 2, False)
    assert counts.sessions("s1") == 1  # v1's entry is gone: memory follows the audience
    clock.now_s = t0 + 5 + IDLE_S + 1
    [snap] = counts.sample()
    assert (snap.concurrent, snap.unique_viewers, snap.final) == (0, 2, True)
    assert counts.sample() == []  # one zero, then quiet until records come again
    clock.now_s += 1
    counts.apply(batch(usage("v1", clock.now_s)))  # v1 is back: not a new unique viewer
    [snap] = counts.sample()
    assert (snap.concurrent, snap.unique_viewers, snap.final) == (1, 2, False)


def test_an_idle_stream_is_dropped_after_keep_idle_s(clock: Clock) -> None:
    counts = ViewerCounts(idle_s=IDLE_S, keep_idle_s=60.0, clock=clock)
    counts.apply(batch(usage("v1", clock.now_s)))
    clock.now_s += IDLE_S + 1
    assert [s.final for s in counts.sample()] == [True]
    clock.now_s += 59
    assert counts.sample() == [] and "s1" in counts
    clock.now_s += 1
    assert counts.sample() == [] and "s1" not in counts


def test_a_late_record_of_a_finished_visit_counts_unique_not_concurrent(
    counts: ViewerCounts, clock: Clock
) -> None:
    counts.apply(batch(usage("old", clock.now_s - IDLE_S - 5), usage("new", clock.now_s)))
    [snap] = counts.sample()
    assert (snap.concurrent, snap.unique_viewers, snap.bytes) == (1, 2, 2000)


def test_concurrent_by_latest_rendition(counts: ViewerCounts, clock: Clock) -> None:
    now = clock.now_s
    counts.apply(batch(usage("v1", now - 3, "720p"), usage("v2", now - 3, "360p"),
                       usage("v3", now - 3, ""), usage("v4", now - 3, "720p")))
    # v1 switched down on another edge; an older record from a third edge says 720p again
    counts.apply(batch(usage("v1", now - 1, "360p"), source="b1"))
    counts.apply(batch(usage("v1", now - 2, "720p"), source="c1"))
    # v3 had only fetched the master; now it plays 160p
    counts.apply(batch(usage("v3", now - 1, "160p")))
    [snap] = counts.sample()
    assert snap.concurrent == 4
    assert snap.by_rendition == {"720p": 1, "360p": 2, "160p": 1}


def test_master_only_sessions_count_as_viewers_outside_the_rendition_map(
    counts: ViewerCounts, clock: Clock
) -> None:
    counts.apply(batch(usage("v1", clock.now_s, ""), usage("v2", clock.now_s, "480p")))
    [snap] = counts.sample()
    assert (snap.concurrent, snap.by_rendition) == (2, {"480p": 1})


def test_watch_time_is_the_span_of_each_visit_across_edges(
    counts: ViewerCounts, clock: Clock
) -> None:
    t0 = clock.now_s
    counts.apply(batch(usage("v1", t0), usage("v2", t0)))
    clock.now_s = t0 + 4
    counts.apply(batch(usage("v1", t0 + 2), source="a1"))
    counts.apply(batch(usage("v1", t0 + 4), usage("v2", t0 + 3), source="b1"))
    counts.apply(batch(usage("v1", t0 + 3), source="a1"))  # older than b1's: adds nothing
    [snap] = counts.sample()
    assert snap.watch_s == pytest.approx(4 + 3)
    assert snap.interval_s == pytest.approx(4)
    # a gap longer than IDLE_S is a new visit: the time away is not watch time
    clock.now_s = t0 + 30
    counts.apply(batch(usage("v1", t0 + 25)))
    counts.apply(batch(usage("v1", t0 + 30)))
    [snap] = counts.sample()
    assert snap.watch_s == pytest.approx(5)  # bytes and watch time are per interval
    assert snap.bytes == 2000


def test_streams_are_counted_apart_and_forgotten(counts: ViewerCounts, clock: Clock) -> None:
    counts.apply(batch(usage("v1", clock.now_s), stream="s1"))
    counts.apply(batch(usage("v1", clock.now_s), usage("v2", clock.now_s), stream="s2"))
    assert {s.stream_id: s.concurrent for s in counts.sample()} == {"s1": 1, "s2": 2}
    counts.forget("s1")
    assert [s.stream_id for s in counts.sample()] == ["s2"]


def test_recorder_batches_feed_the_counts(counts: ViewerCounts, clock: Clock) -> None:
    """UsageRecorder's own batches, through encode/decode, as the bus carries them."""
    edges = [UsageRecorder("a1", "a", clock=clock), UsageRecorder("b1", "b", clock=clock)]
    for n in range(30):
        edge = edges[n % 2]  # every viewer fetches from both edges
        for viewer in range(7):
            edge.record("s1", "720p" if viewer < 4 else "480p", f"sid-{viewer}", 500)
        clock.now_s += 1
    for edge in edges:
        for b in edge.take():
            counts.apply(UsageBatch.decode(b.encode()))
    [snap] = counts.sample()
    assert (snap.concurrent, snap.unique_viewers) == (7, 7)
    assert snap.by_rendition == {"720p": 4, "480p": 3}
    assert snap.bytes == 30 * 7 * 500


def test_idle_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="idle_s"):
        ViewerCounts(idle_s=0)


def test_unique_is_exact_while_small() -> None:
    unique = UniqueSessions()
    for n in range(EXACT_MAX):
        unique.add(f"viewer-{n}")
        unique.add(f"viewer-{n}")
    assert unique.exact and unique.count() == EXACT_MAX


@pytest.mark.parametrize("distinct", [EXACT_MAX + 1, 10_000, 200_000])
def test_unique_estimate_past_the_exact_set_within_three_standard_errors(
    distinct: int,
) -> None:
    rng = random.Random(distinct)
    unique = UniqueSessions()
    sessions = [f"{rng.getrandbits(128):032x}" for _ in range(distinct)]
    for sid in sessions + sessions[: distinct // 2]:  # repeats change nothing
        unique.add(sid)
    assert not unique.exact
    assert unique.count() == pytest.approx(distinct, rel=3 * STANDARD_ERROR)
