"""The origin's counters (plain ints, bumped by its routes) and their `/metrics` collector.

Requests are counted by kind where the routes already know it (master, media playlist,
blocking reload, part, segment, init); "other" (steering, recordings, not found, /metrics)
is the rest of the total, worked out at scrape time so the hot path pays one increment
per request for the kind and one for the total, status class and bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from .._metrics import reporting
from ._admission import Admission

KINDS = ("master", "playlist", "blocking", "part", "segment", "init", "other")


@dataclass(slots=True)
class OriginStats:
    """Counters for /metrics (plain ints, bumped on the hot path; no locks: one thread)."""

    requests: int = 0  # every request answered by the routes
    master: int = 0
    playlist: int = 0  # media playlists without _HLS_msn (LL-HLS or classic)
    blocking: int = 0  # blocking reloads (_HLS_msn), whether held or answered at once
    part: int = 0
    segment: int = 0
    init: int = 0
    # responses by status class: index status // 100 (1xx..5xx)
    statuses: list[int] = field(default_factory=lambda: [0] * 6)
    sent_bytes: int = 0  # bodies of GET answers
    parked: int = 0  # blocking reloads held now, waiting for their part
    admission: Admission | None = None  # direct viewers' admission (with CDNs configured)

    def by_kind(self) -> dict[str, int]:
        counts = {"master": self.master, "playlist": self.playlist, "blocking": self.blocking,
                  "part": self.part, "segment": self.segment, "init": self.init}
        counts["other"] = max(0, self.requests - sum(counts.values()))
        return counts


def _collect(origins: list[OriginStats]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "streamscale_origin_requests", "requests the origin answered, by kind (playlist: "
        "media playlist without _HLS_msn; blocking: blocking reload)", labels=["kind"])
    totals = dict.fromkeys(KINDS, 0)
    for stats in origins:
        for kind, count in stats.by_kind().items():
            totals[kind] += count
    for kind, count in totals.items():
        requests.add_metric([kind], count)
    yield requests
    responses = CounterMetricFamily("streamscale_origin_responses",
                                    "origin answers by status class", labels=["code"])
    for klass in range(1, 6):
        responses.add_metric([f"{klass}xx"], sum(s.statuses[klass] for s in origins))
    yield responses
    yield CounterMetricFamily("streamscale_origin_sent_bytes",
                              "response body bytes the origin sent (GET)",
                              value=sum(s.sent_bytes for s in origins))
    yield GaugeMetricFamily("streamscale_origin_blocking_reloads_parked",
                            "blocking reloads held now, waiting for their part or segment",
                            value=sum(s.parked for s in origins))
    admissions = [s.admission for s in origins if s.admission is not None]
    yield CounterMetricFamily(
        "streamscale_origin_admission_refused", "direct viewer requests refused 503 at "
        "cdn.origin_viewer_limit", value=sum(a.refused for a in admissions))
    yield GaugeMetricFamily("streamscale_origin_direct_sessions",
                            "direct viewer sessions holding an admission slot now",
                            value=sum(a.active for a in admissions))


@asynccontextmanager
async def origin_metrics(stats: OriginStats) -> AsyncIterator[None]:
    """Report this origin's stats while the block runs."""
    async with reporting("origin", stats, _collect):
        yield
