"""The media node's counters and each live stream's transcode state for `/metrics`.

Per live stream (label `stream`), from its ladder at scrape time: how far the transcoder
runs behind media time (`behind_s`), its smoothed load (ladder seconds per media second;
over 1 it falls behind) and how many rungs overload has shed. Reading the ladder's floats
from the event loop while a worker thread runs it is safe (one attribute read each); the
three may come from different frames, which a scrape a second apart cannot tell.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from .._metrics import reporting

if TYPE_CHECKING:
    from .hub import MediaHub
    from .ingest import RtmpIngest

_HELP = {
    "publishes": "publishes accepted (reconnects included)",
    "refused": "publishes refused (admission control, a second publisher)",
    "transcoder_restarts": "ladders restarted after a transcode error",
    "dropped_rungs": "rungs shed by overload",
    "restored_rungs": "shed rungs restored",
    "flv_errors": "malformed FLV tags from publishers",
}


def _collect(hubs: list[MediaHub]) -> Iterator[Metric]:
    for item in fields(hubs[0].stats) if hubs else ():
        yield CounterMetricFamily(f"streamscale_media_{item.name}",
                                  _HELP.get(item.name, item.name.replace("_", " ")),
                                  value=sum(getattr(h.stats, item.name) for h in hubs))
    live = [(sid, hub.pipeline(sid)) for hub in hubs for sid in hub.live]
    yield GaugeMetricFamily("streamscale_media_live_streams", "streams publishing now",
                            value=len(live))
    behind = GaugeMetricFamily(
        "streamscale_transcode_behind_seconds", "how far the live stream's transcode ladder "
        "runs behind media time", labels=["stream"])
    load = GaugeMetricFamily(
        "streamscale_transcode_load", "the ladder's smoothed seconds of work per media "
        "second (over 1: falling behind)", labels=["stream"])
    shed = GaugeMetricFamily("streamscale_transcode_shed_rungs",
                             "rungs of the live stream shed by overload now",
                             labels=["stream"])
    for sid, pipeline in live:
        ladder = pipeline.ladder if pipeline is not None else None
        if ladder is None:  # not configured yet, or audio only
            continue
        behind.add_metric([sid], ladder.behind_s)
        load.add_metric([sid], ladder.load)
        shed.add_metric([sid], len(ladder.shed_rungs))
    yield behind
    yield load
    yield shed


_INGEST = {  # RtmpIngest attribute -> (metric, help)
    "connections": ("streamscale_ingest_connections", "RTMP connections open now"),
    "protocol_errors": ("streamscale_ingest_protocol_errors",
                        "RTMP connections closed on a protocol error"),
    "refused": ("streamscale_ingest_publishes_refused",
                "publishes refused by the ingest (bad or revoked key, busy stream)"),
    "refused_per_ip_limit": ("streamscale_ingest_refused_per_address",
                             "connections closed at once: too many open from one address"),
    "refused_total_limit": ("streamscale_ingest_refused_full",
                            "connections closed at once: the ingest was full"),
}


def _collect_ingest(ingests: list[RtmpIngest]) -> Iterator[Metric]:
    for attr, (name, text) in _INGEST.items():
        family = GaugeMetricFamily if attr == "connections" else CounterMetricFamily
        yield family(name, text, value=sum(getattr(i, attr) for i in ingests))


@asynccontextmanager
async def media_metrics(hub: MediaHub, ingest: RtmpIngest | None = None
                        ) -> AsyncIterator[None]:
    """Report this hub's stats and streams (and the ingest's) while the block runs."""
    async with reporting("media", hub, _collect):
        if ingest is None:
            yield
            return
        async with reporting("ingest", ingest, _collect_ingest):
            yield
