"""What the load run's platform is, measured beside the players (trio side, no Locust).

`streamscale report` runs the model on the platform as deployed for the run, so it needs
the deployment's inputs, measured independently of the figures it then predicts (the
players' startup and latency, the origin's requests/s):

- the ladder: each rendition's bandwidth from the master, and how far apart its
  independent parts (keyframes) are, from one playlist snapshot each;
- the hold-back the playlists advertise (PART-HOLD-BACK), the part and segment targets;
- the pipeline: for the top rendition, straight at the origin, blocking reloads for each
  next part; when a part first shows up, how long after its media ended (PDT + duration)
  that was (`ready_after_end_s`: ingest, transcode, packaging). One request per reload
  and none for the parts themselves; the probe's own origin requests are counted so the
  report can take them out of the origin's figures.

None of this is what the players measure: a model fed these and the calibrated costs
that then predicts the players' figures has predicted them, not been fitted to them.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import m3u8
import trio

from .hls import Chunk, MediaView, PlaylistError, blocking_request, join_point, parse_media

ORIGIN_PATHWAY = "origin"  # the steered master's pathway on the origin itself
MAX_SAMPLES = 2_000


@dataclass
class DeploymentProbe:
    """Filled in by `run`; `as_dict()` goes into the load run's summary.json."""

    master_url: str
    origin_url: str = ""  # http://127.0.0.1:port of the origin ("" = probe via the master)
    renditions: list[dict[str, Any]] = field(default_factory=list)
    part_target_s: float | None = None
    segment_target_s: float | None = None
    part_hold_back_s: float | None = None
    ready_after_end_s: list[float] = field(default_factory=list)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    via: str = ""

    def _url(self, url: str) -> str:
        """`url` moved onto the origin (same path), when the origin is known."""
        if not self.origin_url:
            return url
        parts = urlsplit(url)
        return f"{self.origin_url.rstrip('/')}{parts.path}" + (
            f"?{parts.query}" if parts.query else "")

    async def _get(self, client: httpx.AsyncClient, url: str) -> str:
        self.requests += 1
        # as an edge's fetch: the origin does not count the probe as a viewer (it would
        # show in the viewer counts the report reads the rendition mix from) nor admit it
        response = await client.get(url, headers={"x-streamscale-edge": "deployment-probe"})
        response.raise_for_status()
        return response.text

    async def run(self, client: httpx.AsyncClient, stop: trio.Event) -> None:
        """Snapshot the ladder, then follow the top rendition's parts until `stop`."""
        try:
            await self._run(client, stop)
        except (httpx.HTTPError, PlaylistError, ValueError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _run(self, client: httpx.AsyncClient, stop: trio.Event) -> None:
        master_url = self._url(self.master_url)
        master = m3u8.loads(await self._get(client, master_url), uri=master_url)
        pathways = {p.stream_info.pathway_id or "." for p in master.playlists}
        pathway = ORIGIN_PATHWAY if ORIGIN_PATHWAY in pathways else min(pathways)
        self.via = f"origin ({pathway} pathway)" if self.origin_url else f"{pathway} pathway"
        variants = [p for p in master.playlists
                    if (p.stream_info.pathway_id or ".") == pathway]
        top: tuple[float, str, MediaView] | None = None
        for v in variants:
            url = self._url(urljoin(master_url, v.uri))
            view = parse_media(await self._get(client, url))
            bandwidth = float(v.stream_info.bandwidth or 0)
            self.renditions.append({
                "name": v.stream_info.stable_variant_id or v.uri,
                "bandwidth_bps": bandwidth,
                "independent_s": independent_interval_s(view),
                "join_behind_s": join_behind_s(view),
            })
            self.part_target_s = _part_target(view) or self.part_target_s
            self.segment_target_s = view.target_duration_s
            self.part_hold_back_s = view.part_hold_back_s
            if top is None or bandwidth > top[0]:
                top = (bandwidth, url, view)
        if top is None:
            raise PlaylistError("the master lists no variants")
        _, url, view = top
        async with trio.open_nursery() as nursery:
            async def follow() -> None:
                try:
                    await self._follow(client, url, view)
                except (httpx.HTTPError, PlaylistError, ValueError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                nursery.cancel_scope.cancel()

            nursery.start_soon(follow)
            await stop.wait()
            nursery.cancel_scope.cancel()

    async def _follow(self, client: httpx.AsyncClient, url: str, view: MediaView) -> None:
        if not view.parts or not view.can_block_reload:
            raise PlaylistError("the top rendition has no LL-HLS parts with blocking reload")
        last = view.parts[-1]
        while len(self.ready_after_end_s) < MAX_SAMPLES:
            msn, part = blocking_request(view, last)
            query = f"_HLS_msn={msn}" + ("" if part is None else f"&_HLS_part={part}")
            view = parse_media(await self._get(client, f"{url}?{query}"))
            now = time.time()
            newer = [c for c in view.parts if (c.msn, c.part or 0) > (last.msn, last.part or 0)]
            if not newer:
                continue
            first = newer[0]  # the part this reload waited for: it has just been published
            if first.start_epoch_s is not None:
                self.ready_after_end_s.append(now - first.start_epoch_s - first.duration_s)
            last = newer[-1]

    def as_dict(self) -> dict[str, Any]:
        ready = sorted(self.ready_after_end_s)
        return {
            "via": self.via,
            "renditions": self.renditions,
            "part_target_s": self.part_target_s,
            "segment_target_s": self.segment_target_s,
            "part_hold_back_s": self.part_hold_back_s,
            "join_behind_s": _mean([r["join_behind_s"] for r in self.renditions
                                    if r.get("join_behind_s") is not None]),
            "parts_followed": len(ready),
            "ready_after_end_s_mean": statistics.fmean(ready) if ready else None,
            "ready_after_end_s_p50": _quantile(ready, 0.5),
            "ready_after_end_s_p95": _quantile(ready, 0.95),
            "probe_requests": self.requests,
            "errors": self.errors,
            "what": "measured beside the players: ladder and hold-back from the playlists, "
                    "part publication delay from blocking reloads at the origin "
                    "(PDT + duration -> listed)",
        }


def join_behind_s(view: MediaView) -> float | None:
    """How far behind the live edge the load player's join rule (`loadtest.hls.join_point`)
    starts, were every part independent: the hold-back rounded to whole parts."""
    if not view.low_latency:
        return None
    parts = tuple(dataclasses.replace(c, independent=True) for c in view.parts)
    start = join_point(dataclasses.replace(view, parts=parts), low_latency=True)
    edge = parts[-1]
    if start.start_epoch_s is None or edge.start_epoch_s is None:
        return None
    return edge.start_epoch_s + edge.duration_s - start.start_epoch_s


def independent_interval_s(view: MediaView) -> float:
    """Mean media time between independent parts (0 when every part is independent; the
    segment target when the snapshot shows fewer than two)."""
    parts: list[Chunk] = list(view.parts)
    if not parts:
        return 0.0
    if all(c.independent for c in parts):
        return 0.0
    starts: list[float] = []
    t = 0.0
    for c in parts:
        if c.independent:
            starts.append(t)
        t += c.duration_s
    if len(starts) < 2:
        return view.target_duration_s
    return (starts[-1] - starts[0]) / (len(starts) - 1)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _part_target(view: MediaView) -> float | None:
    return max((c.duration_s for c in view.parts), default=None)


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]
