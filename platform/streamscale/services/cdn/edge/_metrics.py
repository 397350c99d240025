"""The edges' counters for `/metrics`, read from their `EdgeStats` at scrape time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..._metrics import reporting
from ._cache import EdgeStats

_LABELS = ["edge", "cdn"]
# (metric name, help, EdgeStats attribute); `requests` is hits + misses
_COUNTERS = (
    ("streamscale_edge_hits", "requests answered from the edge's cache", "hits"),
    ("streamscale_edge_misses", "requests answered from an upstream fetch (started or "
     "joined)", "misses"),
    ("streamscale_edge_coalesced", "misses that joined a fetch already in flight",
     "coalesced"),
    ("streamscale_edge_upstream_requests", "fetches sent upstream (origin or shield)",
     "upstream_requests"),
    ("streamscale_edge_upstream_errors", "upstream fetches that failed (unreachable, broken, "
     "too slow) or answered 5xx", "upstream_errors"),
    ("streamscale_edge_evictions", "cache entries pushed out by the byte budget",
     "evictions"),
)


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    cdn: str
    stats: EdgeStats


def _collect(edges: list[_Member]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "streamscale_edge_requests", "media requests served (hits + misses; /healthz and "
        "refused paths not counted)", labels=_LABELS)
    for edge in edges:
        requests.add_metric([edge.name, edge.cdn], edge.stats.hits + edge.stats.misses)
    yield requests
    for name, text, attribute in _COUNTERS:
        family = CounterMetricFamily(name, text, labels=_LABELS)
        for edge in edges:
            family.add_metric([edge.name, edge.cdn], getattr(edge.stats, attribute))
        yield family
    cached = GaugeMetricFamily("streamscale_edge_cached_bytes",
                               "memory the edge's cache holds now", labels=_LABELS)
    for edge in edges:
        cached.add_metric([edge.name, edge.cdn], edge.stats.cached_bytes)
    yield cached


@asynccontextmanager
async def edge_metrics(name: str, cdn: str, stats: EdgeStats) -> AsyncIterator[None]:
    """Report this edge's stats while the block runs (with the process's other edges)."""
    async with reporting("edge", _Member(name, cdn, stats), _collect):
        yield
