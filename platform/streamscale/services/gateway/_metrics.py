"""The API's request counts and latency for `/metrics`, and `GET /metrics` itself.

A before/after request hook pair counts each request by method, route template (the URL
rule, e.g. `/api/streams/<id:stream_id>`: bounded, unlike raw paths; "unmatched" for
404/405 before routing) and status class, and puts its handling time in a histogram per
method and route. The cost is two dict lookups and a bisect per request, next to the
~450 us hypercorn + quart spend on one (DESIGN.md).

`GET /metrics` (outside /api, hidden from the OpenAPI document, under no rate limit)
serves every collector of the process: with `streamscale up` that is every service.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from quart import Response, g, request
from quart_schema import hide
from quart_trio import QuartTrio

from ...runtime import current_resources
from .._metrics import reporting
from ..errors import ApiError

EXTENSION = "streamscale.metrics"
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Latency:
    __slots__ = ("counts", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)  # per bucket, not cumulative; last: +Inf
        self.sum_s = 0.0


class ApiStats:
    """Counts by (method, route, status class) and latency by (method, route)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], _Latency] = {}

    def observe(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        if method not in _METHODS:
            method = "other"
        key = (method, route, f"{status // 100}xx")
        self.requests[key] = self.requests.get(key, 0) + 1
        latency = self.latency.get((method, route))
        if latency is None:
            latency = self.latency[(method, route)] = _Latency()
        latency.counts[bisect.bisect_left(BUCKETS_S, elapsed_s)] += 1
        latency.sum_s += elapsed_s


def _collect(apps: list[ApiStats]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "streamscale_api_requests", "API requests by method, route template and status class",
        labels=["method", "route", "code"])
    counts: dict[tuple[str, str, str], int] = {}
    for stats in apps:
        for key, count in stats.requests.items():
            counts[key] = counts.get(key, 0) + count
    for labels, count in sorted(counts.items()):
        requests.add_metric(list(labels), count)
    yield requests
    histogram = HistogramMetricFamily(
        "streamscale_api_request_seconds", "time from the request's first hook to its "
        "response (the app's part; not hypercorn's parsing and writing)",
        labels=["method", "route"])
    merged: dict[tuple[str, str], _Latency] = {}
    for stats in apps:
        for pair, latency in stats.latency.items():
            into = merged.setdefault(pair, _Latency())
            into.counts = [a + b for a, b in zip(into.counts, latency.counts, strict=True)]
            into.sum_s += latency.sum_s
    for (method, route), latency in sorted(merged.items(), key=lambda item: item[0]):
        buckets, total = [], 0
        for bound, count in zip((*BUCKETS_S, float("inf")), latency.counts, strict=True):
            total += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        histogram.add_metric([method, route], buckets, latency.sum_s)
    yield histogram


def install(app: QuartTrio) -> None:
    """Count every request of `app` and serve `GET /metrics` on it."""
    stats = app.extensions[EXTENSION] = ApiStats()

    async def started() -> None:
        g.metrics_t0 = time.perf_counter()

    async def finished(response: Response) -> Response:
        t0 = getattr(g, "metrics_t0", None)
        rule = request.url_rule
        stats.observe(request.method, rule.rule if rule is not None else "unmatched",
                      response.status_code, time.perf_counter() - t0 if t0 else 0.0)
        return response

    # first, so the time includes the other hooks and a request they refuse is timed too
    app.before_request_funcs.setdefault(None, []).insert(0, started)
    app.after_request(finished)

    @app.get("/metrics")
    @hide
    async def metrics() -> Response:
        """Prometheus text exposition of this process's services (for operators)."""
        try:
            registry = current_resources().metrics
        except RuntimeError:  # an app made without the runtime (some tests)
            raise ApiError("no metrics: not run by the streamscale runtime", status=404,
                           code="not_found") from None
        body, content_type = registry.render()
        return Response(body, content_type=content_type,
                        headers={"Cache-Control": "no-store"})


@asynccontextmanager
async def api_metrics(app: QuartTrio) -> AsyncIterator[None]:
    """Report the app's request stats while the block runs."""
    stats: ApiStats = app.extensions[EXTENSION]
    async with reporting("api", stats, _collect):
        yield
