"""What the origin sees from a scenario's edge fleet at FULL scale, after coalescing.

The capacity model (`sim.delivery.Delivery`) holds viewers as fluid counts per (channel,
rendition, edge) and charges the level above one fetch per object per *active* cell:
P(active) = 1 - exp(-n) for n expected viewers, two objects per part (one blocking
playlist reload, one part). With a shield each CDN's shield is the cell's fetcher (viewers
summed over the CDN's edges); without one every edge fetches for itself. This module builds
that `Delivery` for the scenario at its peak (the model's own code: routing, Zipf
popularity, rendition shares) and reads the cells off it, so the hybrid run drives the
origin with exactly the pattern the model assumes:

- one *LL fetch loop* per active (shield or edge, channel, rendition) cell: a blocking
  reload per part and the part (rate 2 / part_s), init once when it starts;
- one *classic loop* per cell with a classic-HLS viewer (`classic_share`; the model has no
  classic share: with 0, the default, the LL total is the model's `origin_rps`): a blocking
  reload (`_HLS_msn` only) per segment and the segment (2 / segment_s);
- master playlists: the origin marks them `max-age=1`, so a shield refetches a channel's
  master at most once a second, and only in a second some viewer joined that channel on
  that CDN (joins from `sim.workload.arrival_rate`, Poisson);
- steering: every player reloads the steering manifest from the origin itself
  (cdn/steering.py: no-store, and edges do not route /steering), held up to `hold_s` when
  nothing changed, then again after the TTL. Not coalesced by any edge, and not in the
  model: reported here so it is seen.

The model's per-cell probability is restated for the per-rendition split (the model only
returns the total); `check_against_model` asserts the LL total equals `Loads.origin_rps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.delivery import Delivery, Loads
from sim.scenario import Scenario
from sim.workload import FloatArray, arrival_rate

MASTER_MAX_AGE_S = 1.0  # origin/_routes.py: live playlists (the master too) `max-age=1`
STEERING_TTL_S = 1.0  # the manifest's TTL: players sleep this between reloads
# cdn/steering.py: CdnConfig.steering_ttl_s (5) - the TTL, held when nothing changed
STEERING_HOLD_S = 4.0
MODEL_MATCH_REL = 1e-9


@dataclass(frozen=True, kw_only=True)
class RenditionLoad:
    """One scenario rendition's share of the origin pattern (summed over fetchers and
    channels)."""

    name: str
    bitrate_kbps: float
    viewers: float
    ll_loops: float  # expected active cells with an LL-HLS viewer: one fetch loop each
    classic_loops: float  # expected active cells with a classic-HLS viewer
    ll_rps: float  # ll_loops x 2 / part_s (blocking reload + part)
    classic_rps: float  # classic_loops x 2 / segment_s (blocking reload + segment)


@dataclass(frozen=True, kw_only=True)
class OriginPattern:
    scenario: str
    viewers: float  # at the shape's peak
    part_s: float
    segment_s: float
    shield: bool
    coalescing: bool
    fetchers: int  # shields (one per CDN) or edges that fetch from the origin
    channels: int
    classic_share: float
    renditions: tuple[RenditionLoad, ...]
    master_rps: float
    steering_rps: float  # per player, direct to the origin (not coalesced; not modelled)
    steering_parked: float  # steering reloads held open at the origin at any moment
    model: Loads  # sim.delivery's own figures for the same cohorts

    @property
    def loops(self) -> float:
        return sum(r.ll_loops + r.classic_loops for r in self.renditions)

    @property
    def media_rps(self) -> float:
        """Playlist reloads + parts + segments per second at the origin (init aside)."""
        return sum(r.ll_rps + r.classic_rps for r in self.renditions)

    @property
    def ll_rps(self) -> float:
        return sum(r.ll_rps for r in self.renditions)

    def check_against_model(self) -> None:
        """With no classic share the LL loops' rate is the model's origin_rps (no fallback
        viewers at the peak without faults): a model change the split misses fails here."""
        if self.classic_share == 0.0:
            want = self.model.origin_rps
            if abs(self.ll_rps - want) > MODEL_MATCH_REL * max(1.0, want):
                raise AssertionError(f"hybrid pattern {self.ll_rps} req/s != sim.delivery "
                                     f"origin_rps {want}")


def peak_fraction(sc: Scenario) -> float:
    return max(f for _, f in sc.workload.shape)


def origin_pattern(sc: Scenario, *, classic_share: float = 0.0) -> OriginPattern:
    """The scenario's origin request pattern at its peak, from sim.delivery's cohorts."""
    if not 0.0 <= classic_share <= 1.0:
        raise ValueError(f"classic share must be in [0, 1], not {classic_share}")
    w, d = sc.workload, sc.delivery
    dv = Delivery(sc)
    viewers = w.peak_viewers * peak_fraction(sc)
    route = dv.route(0.0)
    dv.add(viewers, route)
    model = dv.loads(origin_up=1.0, transcode_speed=1.0)
    # n per (channel, rendition, fetcher): summed over a CDN's edges behind a shield
    cdn_edges = [dv.cdn_of == i for i in range(len(sc.cdns))]
    if d.shield:
        n = np.stack([dv.n[:, :, sl].sum(axis=2) for sl in cdn_edges], axis=2)
    else:
        n = dv.n[:, :, dv.cdn_of >= 0]
    ll_n, classic_n = n * (1.0 - classic_share), n * classic_share
    ll_cells = _cells(ll_n, dv, herd=not d.shield and not d.coalescing)
    classic_cells = _cells(classic_n, dv, herd=not d.shield and not d.coalescing)
    per_ll = 2.0 / d.part_s
    assert abs(per_ll - dv.objects_per_s) < 1e-12  # the model's objects per cell per second
    per_classic = 2.0 / d.segment_s
    renditions = tuple(
        RenditionLoad(name=r.name, bitrate_kbps=r.bitrate_kbps,
                      viewers=float(n[:, i, :].sum()),
                      ll_loops=float(ll_cells[:, i, :].sum()),
                      classic_loops=float(classic_cells[:, i, :].sum()),
                      ll_rps=float(ll_cells[:, i, :].sum()) * per_ll,
                      classic_rps=float(classic_cells[:, i, :].sum()) * per_classic)
        for i, r in enumerate(w.renditions))
    joins_per_s = arrival_rate(w, 0.0, sc.run.step_s)
    cdn_weight = np.array([c.weight for c in sc.cdns])
    lam = joins_per_s * dv.p[:, None] * cdn_weight[None, :]  # per (channel, CDN) per second
    master_rps = float((-np.expm1(-lam * MASTER_MAX_AGE_S)).sum() / MASTER_MAX_AGE_S)
    period_s = STEERING_TTL_S + STEERING_HOLD_S
    fetchers = len(sc.cdns) if d.shield else int((dv.cdn_of >= 0).sum())
    return OriginPattern(
        scenario=sc.name, viewers=viewers, part_s=d.part_s, segment_s=d.segment_s,
        shield=d.shield, coalescing=d.coalescing, fetchers=fetchers, channels=w.channels,
        classic_share=classic_share, renditions=renditions, master_rps=master_rps,
        steering_rps=viewers / period_s, steering_parked=viewers * STEERING_HOLD_S / period_s,
        model=model)


def _cells(n: FloatArray, dv: Delivery, *, herd: bool) -> FloatArray:
    """Expected fetch loops per cell: sim.delivery's P(active) = 1 - exp(-n), plus, for an
    edge without coalescing, the model's herd misses (herd_fraction of the other viewers)."""
    active: FloatArray = -np.expm1(-n)
    if herd:
        active = active + (n - active) * dv.sc.delivery.herd_fraction
    return active


def allocate(weights: list[float], total: int) -> list[int]:
    """Split `total` integer loops in proportion to `weights` (largest remainder)."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    exact = [w * total / s for w in weights]
    out = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - out[i], reverse=True)
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def rung_for(index: int, scenario_renditions: int, rungs: list[str]) -> str:
    """The real ladder's rung standing in for the scenario's rendition `index` (both
    ordered from the top): by rank, spread over the real ladder's length."""
    if scenario_renditions <= 1 or len(rungs) == 1:
        return rungs[0]
    return rungs[round(index * (len(rungs) - 1) / (scenario_renditions - 1))]
