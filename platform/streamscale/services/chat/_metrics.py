"""The chat gateway's and workers' counters for `/metrics` (their own plain ints)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from .._metrics import reporting
from .fanout import ChatGateway
from .pipeline import ChatWorker


@dataclass(frozen=True, slots=True)
class _Member:
    gateway: ChatGateway
    workers: Sequence[ChatWorker]  # the list the service fills as it starts them


# (name, help, ChatStats attribute)
_GATEWAY = (
    ("streamscale_chat_connections_accepted", "WebSocket connections accepted",
     "connections"),
    ("streamscale_chat_frames_sent", "batch frames encoded (one per room per batch "
     "interval, written to every member)", "batches"),
    ("streamscale_chat_deliveries", "messages x members they were written or queued for",
     "deliveries"),
    ("streamscale_chat_queued_frames", "frames queued because a socket's buffer was full",
     "queued_frames"),
    ("streamscale_chat_sampled_out", "messages left out of busy rooms' batches by "
     "sampling", "skipped"),
    ("streamscale_chat_slow_reader_drops", "clients dropped because their send queue "
     "overflowed", "dropped_slow"),
)
# (name, help, function of a worker)
_WORKERS: tuple[tuple[str, str, Callable[[ChatWorker], int]], ...] = (
    ("streamscale_chat_messages_accepted", "posts persisted by the workers (visible or "
     "held; redeliveries included)", lambda w: w.processed - w.blocked),
    ("streamscale_chat_messages_held", "posts held for review by moderation",
     lambda w: w.held),
    ("streamscale_chat_messages_blocked", "posts refused by moderation",
     lambda w: w.blocked),
    ("streamscale_chat_message_redeliveries", "posts seen again (idempotent retries)",
     lambda w: w.retries),
)


def _collect(members: list[_Member]) -> Iterator[Metric]:
    yield GaugeMetricFamily("streamscale_chat_connections", "WebSocket clients connected now",
                            value=sum(len(m.gateway.peers) for m in members))
    yield GaugeMetricFamily("streamscale_chat_rooms", "rooms with members on this gateway",
                            value=sum(len(m.gateway.rooms) for m in members))
    for name, text, attribute in _GATEWAY:
        yield CounterMetricFamily(name, text, value=sum(
            getattr(m.gateway.stats, attribute) for m in members))
    closes = CounterMetricFamily("streamscale_chat_closes", "connections closed by the "
                                 "gateway, by WebSocket close code", labels=["code"])
    codes: dict[int, int] = {}
    for m in members:
        for code, count in m.gateway.stats.closes.items():
            codes[code] = codes.get(code, 0) + count
    for code, count in sorted(codes.items()):
        closes.add_metric([str(code)], count)
    yield closes
    for name, text, read in _WORKERS:
        yield CounterMetricFamily(name, text, value=sum(
            read(w) for m in members for w in m.workers))


@asynccontextmanager
async def chat_metrics(gateway: ChatGateway, workers: Sequence[ChatWorker]
                       ) -> AsyncIterator[None]:
    """Report this gateway and these workers while the block runs."""
    async with reporting("chat", _Member(gateway, workers), _collect):
        yield
