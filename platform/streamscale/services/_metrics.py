"""Reporting a service's stats to the process's `/metrics`, and serving it on the lean
listeners.

`reporting(kind, member, collect_all)` adds `member` (an edge, an origin, a media hub...)
to the process's group of that kind while the block runs. A group is one collector over
all its members: one process may run several edges, and each metric family must appear
once in an exposition (two collectors yielding `streamscale_edge_hits` would print it
twice, which scrapers reject). Outside a runtime (a test or bench serving one edge alone)
there is no registry: the block runs and nothing is reported.

An async context manager, so a service adds it to the `async with` that already holds its
nursery (`async with reporting(...), trio.open_nursery() as n:`): reported from start to
the end of the drain, removed when the service stops.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from prometheus_client.metrics_core import Metric

from ..runtime import Metrics, current_resources
from ._http_answer import Head, Reply, text_reply

__all__ = ["metrics_reply", "reporting"]

T = TypeVar("T")


class _Group:
    def __init__(self, collect_all: Callable[[list[Any]], Iterable[Metric]]) -> None:
        self.members: list[Any] = []
        self.collect_all = collect_all
        self.remove: Callable[[], None] = lambda: None

    def collect(self) -> Iterator[Metric]:
        yield from self.collect_all(list(self.members))


_groups: weakref.WeakKeyDictionary[Metrics, dict[str, _Group]] = weakref.WeakKeyDictionary()


def _process_metrics() -> Metrics | None:
    try:
        return current_resources().metrics
    except RuntimeError:  # no runtime: a component served alone by a test or bench
        return None


@asynccontextmanager
async def reporting(
    kind: str, member: T, collect_all: Callable[[list[T]], Iterable[Metric]]
) -> AsyncIterator[None]:
    """Report `member` with the other members of `kind` in this process while the block
    runs. `collect_all` gets every member at scrape time and yields the families."""
    metrics = _process_metrics()
    if metrics is None:
        yield
        return
    groups = _groups.setdefault(metrics, {})
    group = groups.get(kind)
    if group is None:
        group = groups[kind] = _Group(collect_all)
        group.remove = metrics.add(group.collect)
    group.members.append(member)
    try:
        yield
    finally:
        group.members.remove(member)
        if not group.members:
            group.remove()
            del groups[kind]


_METRICS_HEADS: dict[str, Head] = {}


def metrics_reply() -> Reply:
    """`GET /metrics` on a lean listener: the process's exposition (404 outside a
    runtime, where there is none)."""
    metrics = _process_metrics()
    if metrics is None:
        return text_reply(404, "no metrics here: not run by the streamscale runtime")
    body, content_type = metrics.render()
    head = _METRICS_HEADS.get(content_type)
    if head is None:
        head = _METRICS_HEADS[content_type] = Head(200, [
            (b"content-type", content_type.encode()), (b"cache-control", b"no-store")])
    return head, body
