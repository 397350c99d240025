"""The process's Prometheus metrics: one registry per `Resources`, read at scrape time.

Services keep their counters as plain attributes on their own stats objects (EdgeStats,
MediaStats, ...): nothing on a hot path touches a Prometheus object. Each service adds a
collector, a function that reads those stats and yields metric families when `/metrics`
is scraped. One registry per process (per `open_resources`), not prometheus_client's
global one: tests run many platforms in one interpreter, and the global registry refuses
a second collector of the same name.

    def collect() -> Iterable[Metric]:
        c = CounterMetricFamily("streamscale_edge_requests", "requests served", labels=["edge"])
        c.add_metric([edge.name], edge.stats.hits + edge.stats.misses)
        yield c

    current_resources().metrics.add(collect)

`render()` gives the text exposition (bytes, content type) every role serves at `/metrics`:
the gateway, and the origin and edge listeners, so a role run alone is scraped the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

CollectFn = Callable[[], Iterable[Metric]]


class _FnCollector(Collector):
    def __init__(self, fn: CollectFn) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Metric]:
        return self._fn()


class Metrics:
    """The collectors of the services running in this process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collectors: list[_FnCollector] = []

    def add(self, collect: CollectFn) -> Callable[[], None]:
        """Register `collect`; returns a function that unregisters it (call it when the
        service stops, so a restarted service does not report twice)."""
        collector = _FnCollector(collect)
        self.registry.register(collector)
        self._collectors.append(collector)

        def remove() -> None:
            if collector in self._collectors:
                self._collectors.remove(collector)
                self.registry.unregister(collector)

        return remove

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
