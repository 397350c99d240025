"""The analytics service's counters for `/metrics`: viewer records and health batches
taken from the bus, samples written, store and bus failures, rollup runs.

Counters are the services' own plain stats (`WorkerStats`, `HealthWorkerStats`, the
scheduler's runs), summed over the analytics workers of this process at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import trio
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from .._metrics import reporting
from .health_worker import HealthWorker
from .rollup import RollupScheduler
from .worker import AnalyticsWorker


@dataclass(frozen=True, slots=True)
class AnalyticsParts:
    worker: AnalyticsWorker
    health: HealthWorker
    rollups: RollupScheduler


def _collect(members: list[AnalyticsParts]) -> Iterator[Metric]:
    if not members:
        return
    for item in fields(members[0].worker.stats):
        yield CounterMetricFamily(
            f"streamscale_analytics_viewer_{item.name}", f"viewer counts: {item.name}"
            .replace("_", " "), value=sum(getattr(m.worker.stats, item.name) for m in members))
    for item in fields(members[0].health.stats):
        yield CounterMetricFamily(
            f"streamscale_analytics_health_{item.name}", f"ingest health: {item.name}"
            .replace("_", " "), value=sum(getattr(m.health.stats, item.name) for m in members))
    yield CounterMetricFamily("streamscale_analytics_rollup_runs", "rollup runs done",
                              value=sum(m.rollups.runs for m in members))
    yield CounterMetricFamily("streamscale_analytics_rollup_failures", "rollup runs failed",
                              value=sum(m.rollups.failures for m in members))


async def report_until(parts: AnalyticsParts, shutdown: trio.Event) -> None:
    """Report `parts` to this process's /metrics until `shutdown`."""
    async with reporting("analytics", parts, _collect):
        await shutdown.wait()
