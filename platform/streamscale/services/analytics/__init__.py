"""The analytics service: viewer counts per stream from the edges' and the origin's access
records (issue 12).

Edges and the origin send `UsageBatch`es over the bus work queue `RECORDS_QUEUE`, keyed by
stream; `run` joins that queue's worker pool (any number of analytics processes share it
over a Redis bus, each owning whole shards) and, every `cdn.viewer_sample_s`, writes each
watched stream's counts: `viewer_count` (concurrent), `peak_viewers`, `unique_viewers`,
`viewers_by_rendition` on the stream, and a `viewer_samples` row kept over time.

Issue 14: it also stores the media nodes' ingest health batches (`HealthWorker`, queue
`ingest-health`) and rolls the fine samples and the chat counts up into 1 min and 1 h
buckets every `analytics.rollup_s` (`RollupScheduler`); `GET /api/streams/{id}/analytics`
(`_api.py`) reads them.
"""

from __future__ import annotations

import logging
import uuid
from functools import partial

import trio

from ...config import Config
from ...runtime import ServiceInfo, current_resources, shutdown_requested
from ._metrics import AnalyticsParts, report_until
from .counts import Snapshot, ViewerCounts
from .health_worker import HealthWorker
from .rollup import RollupScheduler
from .unique import UniqueSessions
from .worker import AnalyticsWorker, WorkerStats

__all__ = ["AnalyticsWorker", "Snapshot", "UniqueSessions", "ViewerCounts", "WorkerStats",
           "run"]

log = logging.getLogger(__name__)


async def run(
    config: Config, *, task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    resources = current_resources()
    store = await resources.store()
    bus = await resources.bus()
    worker = AnalyticsWorker(store, bus, worker_id=f"analytics-{uuid.uuid4().hex[:12]}",
                             idle_s=config.cdn.viewer_idle_s,
                             sample_s=config.cdn.viewer_sample_s)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(worker.run, shutdown=shutdown_requested()))
        health = HealthWorker(store, bus, worker_id=worker.worker_id)
        await nursery.start(partial(health.run, shutdown=shutdown_requested()))
        a = config.analytics
        rollups = RollupScheduler(
            store, rollup_s=a.rollup_s, raw_retention_s=a.raw_retention_s,
            minute_retention_s=a.minute_retention_s,
            lag_s=2 * (a.health_flush_s + config.cdn.viewer_sample_s))
        nursery.start_soon(partial(rollups.run, shutdown=shutdown_requested()))
        nursery.start_soon(report_until, AnalyticsParts(worker, health, rollups),
                           shutdown_requested())
        log.info("analytics: counting viewers (idle %.1f s, sample every %.1f s)",
                 config.cdn.viewer_idle_s, config.cdn.viewer_sample_s)
        task_status.started(ServiceInfo(name="analytics", handles={
            "worker": worker, "health": health, "rollups": rollups}))
