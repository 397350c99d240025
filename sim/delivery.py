"""Viewer cohorts and the delivery tree: edges (capacity, cache, coalescing), shield, origin.

Viewers are fluid counts per (channel, rendition, edge), never one process per viewer: a
million viewers cost one array update per step. The last edge column is a pseudo-edge for
viewers who fell back to the origin (the seed's "fallback to origin"). A live part is new
content, so each active (channel, rendition, edge) cell costs the level above one fetch per
object with request coalescing; P(cell active) = 1 - exp(-n) for n expected viewers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.scenario import Scenario
from sim.workload import FloatArray, channel_weights

BoolArray = npt.NDArray[np.bool_]
PLAYLIST_BYTES = 1_000.0  # LL-HLS playlist delta, ~1 KB (DESIGN: the 1 KB playlist)


@dataclass(frozen=True)
class Loads:
    viewers: float
    egress_gbps: float
    served: FloatArray  # per edge: share of media delivered on time (0 when unreachable)
    edge_util: FloatArray
    origin_util: float
    origin_rps: float
    hit_ratio: float
    stall_viewers: float


class Delivery:
    def __init__(self, sc: Scenario) -> None:
        w, d = sc.workload, sc.delivery
        self.sc = sc
        self.p = channel_weights(w)
        self.q = np.array([r.share for r in w.renditions])
        self.kbps = np.array([r.bitrate_kbps for r in w.renditions])
        self.part_bytes = self.kbps * 1000 / 8 * d.part_s
        cdn_of: list[int] = []
        for i, c in enumerate(sc.cdns):
            cdn_of += [i] * c.edges
        self.cdn_of = np.array([*cdn_of, -1])  # -1: origin pseudo-edge
        self.edges = len(self.cdn_of)
        self.base_route = np.array(
            [sc.cdns[i].weight / sc.cdns[i].edges for i in cdn_of] + [0.0])
        self.cap_gbps = np.array([sc.cdns[i].edge_egress_gbps for i in cdn_of] + [np.inf])
        self.cap_rps = np.array([sc.cdns[i].edge_requests_per_s for i in cdn_of] + [np.inf])
        self.objects_per_s = 2.0 / d.part_s  # blocking playlist reload + part, per part
        self.edge_up = np.ones(self.edges, dtype=bool)
        self.down_since = np.full(self.edges, np.nan)
        self.pq = self.p[:, None] * self.q[None, :]
        self.n = np.zeros((w.channels, len(w.renditions), self.edges))
        self.active = np.zeros_like(self.n)

    @property
    def origin_edge(self) -> int:
        return self.edges - 1

    def add(self, viewers: float, route: FloatArray) -> None:
        if viewers > 0 and route.sum() > 0:
            self.n += viewers * (self.pq[:, :, None] * route[None, None, :])

    def unreachable(self) -> BoolArray:
        return ~self.edge_up

    def route(self, now_s: float) -> FloatArray:
        """Where new viewers land: base weights until each dead edge's failover has passed."""
        d = self.sc.delivery
        r = self.base_route.copy()
        late = ~self.edge_up & (now_s - np.nan_to_num(self.down_since, nan=np.inf)
                                >= self.failover_delay())
        if late.any():
            moved = r[late].sum()
            r[late] = 0.0
            dest = self.failover_dest()
            if d.failover == "none" or dest.sum() == 0:
                return self.base_route.copy()
            r += moved * dest
        return r

    def failover_delay(self) -> float:
        return self.sc.delivery.failover_s

    def failover_dest(self) -> FloatArray:
        """Share of moved viewers per edge: surviving CDN edges, or the origin."""
        dest = np.zeros(self.edges)
        if self.sc.delivery.failover == "origin":
            dest[self.origin_edge] = 1.0
            return dest
        if self.sc.delivery.failover == "cdn":
            alive = self.edge_up.copy()
            alive[self.origin_edge] = False
            dest[alive] = self.base_route[alive]
            total = dest.sum()
            return dest / total if total > 0 else dest
        return dest

    def move(self, src: BoolArray, dest: FloatArray) -> None:
        if not src.any() or dest.sum() == 0:
            return
        moved = self.n[:, :, src].sum(axis=2)
        self.n[:, :, src] = 0.0
        self.n += moved[:, :, None] * dest[None, None, :]

    def loads(self, *, origin_up: float, transcode_speed: float) -> Loads:
        sc, d = self.sc, self.sc.delivery
        n = self.n
        v_re = n.sum(axis=0)
        viewers_e = v_re.sum(axis=0)
        gbps_e = self.kbps @ v_re / 1e6
        req_e = viewers_e * self.objects_per_s
        edge_util = np.maximum(gbps_e / self.cap_gbps, req_e / self.cap_rps)
        np.negative(np.expm1(-n, out=self.active), out=self.active)
        act_re = self.active.sum(axis=0)
        obj = self.objects_per_s
        misses_e = act_re.sum(axis=0) * obj
        if not d.coalescing:
            misses_e += (viewers_e - act_re.sum(axis=0)) * d.herd_fraction * obj
        cdn_edges = self.cdn_of >= 0
        req_cdn = req_e[cdn_edges].sum()
        hit_ratio = 1.0 - misses_e[cdn_edges].sum() / req_cdn if req_cdn > 0 else 1.0
        # What the origin sees: shield fetches per CDN (coalesced per channel x rendition),
        # or every edge miss without a shield, plus the fallback viewers' own requests.
        origin_rps = 0.0
        origin_bytes = 0.0
        per_obj_bytes = (self.part_bytes + PLAYLIST_BYTES) / 2
        for i in range(len(sc.cdns)):
            sl = self.cdn_of == i
            if d.shield:
                kr = -np.expm1(-n[:, :, sl].sum(axis=2))
                fetch_r = kr.sum(axis=0) * obj
            else:
                fetch_r = act_re[:, sl].sum(axis=1) * obj
                if not d.coalescing:
                    extra = v_re[:, sl].sum(axis=1) - act_re[:, sl].sum(axis=1)
                    fetch_r = fetch_r + extra * d.herd_fraction * obj
            origin_rps += fetch_r.sum()
            origin_bytes += fetch_r @ per_obj_bytes
        fallback_r = v_re[:, self.origin_edge]
        origin_rps += fallback_r.sum() * obj
        origin_bytes += fallback_r @ per_obj_bytes * obj
        c = sc.costs
        cores = sc.origin.instances * sc.origin.cores_per_instance * origin_up
        cpu = origin_rps * c.small_request_us / 1e6 + origin_bytes / (c.copy_gbytes_per_s * 1e9)
        origin_gbps = origin_bytes * 8 / 1e9
        egress_cap = sc.origin.egress_gbps * origin_up
        origin_util = (max(cpu / cores, origin_gbps / egress_cap) if cores > 0
                       else (np.inf if origin_rps > 0 else 0.0))
        s_origin = min(1.0, 1.0 / origin_util) if origin_util > 0 else 1.0
        served = np.minimum(1.0, 1.0 / np.maximum(edge_util, 1e-12)) * s_origin
        served[self.origin_edge] = s_origin
        served[~self.edge_up] = 0.0
        served *= transcode_speed
        edge_util[self.origin_edge] = origin_util
        stall = float(viewers_e @ (1.0 - served))
        return Loads(viewers=float(viewers_e.sum()), egress_gbps=float(gbps_e.sum()),
                     served=served, edge_util=edge_util, origin_util=float(origin_util),
                     origin_rps=float(origin_rps), hit_ratio=float(hit_ratio),
                     stall_viewers=stall)
