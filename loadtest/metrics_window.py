"""The platform's own counters over the Locust window, from its Prometheus `/metrics`.

Locust sees what the players see; the model also predicts what the platform does behind
the edges: requests reaching the origin (after the edge caches and coalescing) and how
far the transcoder runs behind. `MetricsWindow` scrapes the gateway's `/metrics` (with
`streamscale up`, or the in-process platform, that holds every service's collectors) just
before Locust starts, once a second while it runs, and just after it exits, and gives:

    locust_window_s                seconds from the first scrape to the last
    origin_requests_per_s          origin requests in the window / its seconds
    origin_requests_by_kind_per_s  the same by kind (master, playlist, blocking, part,
                                   segment, init, other)
    edge_hit_ratio                 edge cache hits / (hits + misses) in the window, all edges
    transcode_lag_p95_s, _max_s    the published stream's `behind_s` over the samples
    shed_rungs_max                 the most rungs overload had shed at a sample

A figure that cannot be measured (no `/metrics` at the target, the origin or media node
in another process, no edge traffic) is None, with the reason in `notes()`: never a guess.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from streamscale.testing.metrics import Scrape

log = logging.getLogger(__name__)

SAMPLE_S = 1.0
KINDS = ("master", "playlist", "blocking", "part", "segment", "init", "other")
ORIGIN = "streamscale_origin_requests_total"
BEHIND = "streamscale_transcode_behind_seconds"
SHED = "streamscale_transcode_shed_rungs"
FIELDS = ("origin_requests_per_s", "origin_requests_by_kind_per_s", "edge_hit_ratio",
          "transcode_lag_p95_s", "transcode_lag_max_s", "shed_rungs_max")


@dataclass(frozen=True, slots=True)
class _Sample:
    at_s: float
    origin: dict[str, float] | None  # requests by kind; None: no origin reports here
    edge_hits: float
    edge_requests: float | None  # hits + misses over every edge; None: no edge reports


class MetricsWindow:
    def __init__(self, metrics_url: str, stream_id: str) -> None:
        self.url = metrics_url
        self.stream_id = stream_id
        self.samples: list[_Sample] = []  # the start scrape, once a second, the end scrape
        self.started = self.finished = False  # the start / end scrape succeeded
        self.behind_s: list[float] = []  # the stream's behind_s at each scrape that had it
        self.shed: list[float] = []
        self.failures: list[str] = []  # why scrapes failed (first few)

    async def _scrape(self, client: httpx.AsyncClient) -> bool:
        try:
            response = await client.get(self.url, timeout=5.0)
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            scrape = Scrape.parse(response.text)
        except (httpx.HTTPError, ValueError) as exc:  # the parser raises ValueError
            if len(self.failures) < 5:
                self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
            return False
        hits = scrape.value("streamscale_edge_hits_total")
        self.samples.append(_Sample(
            trio.current_time(),
            {k: scrape.value(ORIGIN, kind=k) for k in KINDS} if ORIGIN in scrape else None,
            hits, hits + scrape.value("streamscale_edge_misses_total")
            if "streamscale_edge_hits_total" in scrape else None))
        for name, into in ((BEHIND, self.behind_s), (SHED, self.shed)):
            values = [v for _, v in scrape.matching(name, stream=self.stream_id)]
            if values:
                into.append(values[0])
        return True

    async def run(self, client: httpx.AsyncClient, done: trio.Event, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Scrape the window's start, report started, then sample once a second until
        `done` (call `finish` for the end scrape before setting it)."""
        self.started = await self._scrape(client)
        task_status.started()
        while not done.is_set():
            with trio.move_on_after(SAMPLE_S):  # sampling cadence, not a sync
                await done.wait()
            if not done.is_set():
                await self._scrape(client)

    async def finish(self, client: httpx.AsyncClient) -> None:
        """The window's end scrape (just after Locust exits)."""
        self.finished = await self._scrape(client)

    # -- figures ---------------------------------------------------------------------------

    def active(self) -> tuple[_Sample, _Sample] | None:
        """The samples that bound the players' activity: from the last one before the
        edges' request count first moved to the first one after it last moved (Locust's
        start-up and the idle end of its stop timeout trimmed, to the sampling second);
        the whole window without edge figures or movement. None: no complete window."""
        if not (self.started and self.finished) or len(self.samples) < 2:
            return None
        samples = self.samples
        counts = [s.edge_requests for s in samples]
        if counts[0] is None or counts[-1] is None or counts[-1] == counts[0]:
            return samples[0], samples[-1]
        first = max(i for i, c in enumerate(counts) if c == counts[0])
        last = min(i for i, c in enumerate(counts) if c == counts[-1])
        return samples[first], samples[last]

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = dict.fromkeys(FIELDS)
        out["locust_window_s"] = None
        out["metrics_scrapes"] = len(self.samples)
        bounds = self.active()
        if bounds is not None:
            first, last = bounds
            window_s = last.at_s - first.at_s
            out["locust_window_s"] = round(window_s, 3)
            if first.origin is not None and last.origin is not None and window_s > 0:
                by_kind = {k: (last.origin[k] - first.origin[k]) / window_s for k in KINDS}
                out["origin_requests_per_s"] = sum(by_kind.values())
                out["origin_requests_by_kind_per_s"] = by_kind
            if first.edge_requests is not None and last.edge_requests is not None:
                requests = last.edge_requests - first.edge_requests
                if requests > 0:
                    out["edge_hit_ratio"] = (last.edge_hits - first.edge_hits) / requests
        if self.behind_s:
            ordered = sorted(self.behind_s)
            out["transcode_lag_p95_s"] = ordered[math.ceil(0.95 * len(ordered)) - 1]
            out["transcode_lag_max_s"] = ordered[-1]
        if self.shed:
            out["shed_rungs_max"] = int(max(self.shed))
        return out

    def notes(self) -> dict[str, str]:
        """A provenance line per figure: how it was measured, or why it is None."""
        figures = self.figures()
        total_s = (self.samples[-1].at_s - self.samples[0].at_s) if self.samples else 0.0
        window = (f"the {figures['locust_window_s']} s in which players fetched (edge "
                  f"requests moving; sampled every {SAMPLE_S:g} s) of the {total_s:.1f} s "
                  f"between the scrapes just before Locust started and just after it "
                  f"exited, at {self.url}")
        notes = {
            "locust_window_s": window,
            "origin_requests_per_s": (
                "streamscale_origin_requests_total (every request the origin answered: "
                "edge fetches after cache and coalescing, steering, direct viewers, this "
                f"run's own probes) moved over {window}"),
            "origin_requests_by_kind_per_s": "the same, by the origin's kind label",
            "edge_hit_ratio": ("streamscale_edge_hits_total / (hits + misses), every edge, "
                               "moved over the same window"),
            "transcode_lag_p95_s": (
                f'streamscale_transcode_behind_seconds{{stream="{self.stream_id}"}} (the '
                f"ladder's backlog behind media time) at {len(self.behind_s)} scrapes about "
                f"{SAMPLE_S:g} s apart; nearest-rank p95"),
            "transcode_lag_max_s": "the largest of those samples",
            "shed_rungs_max": (
                f'streamscale_transcode_shed_rungs{{stream="{self.stream_id}"}}, the most at '
                f"any of {len(self.shed)} samples"),
        }
        incomplete = not (self.started and self.finished)
        last = self.samples[-1] if self.samples else None
        for name in ("locust_window_s", *FIELDS):
            if figures[name] is not None:
                continue
            if incomplete and not name.startswith(("transcode", "shed")):
                why = (f"{self.url} could not be scraped at the window's start and end "
                       f"({'; '.join(self.failures) or 'no scrape'})")
            elif name.startswith("origin"):
                why = ("the scraped /metrics has no streamscale_origin_requests (the "
                       "origin runs in another process: scrape its own /metrics)")
            elif name == "edge_hit_ratio":
                why = ("no edge served a request in the window"
                       if last is not None and last.edge_requests is not None else
                       "no edge reports to this /metrics (edges in another process)")
            else:
                cause = "; ".join(self.failures) or (
                    "the media node runs in another process, or its ladder never started")
                why = f"no sample of stream {self.stream_id} at {self.url} ({cause})"
            notes[name] = f"not measured: {why}"
        return notes
