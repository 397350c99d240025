"""Probe viewers: a sample of individual viewers whose experience the SLOs are judged on.

The cohorts give loads; quantiles (startup p95, live latency p95) need individuals. About
`probe_viewers` of them at peak are tracked as rows of arrays, vectorised per step, each
riding the cohort state of its own (channel, rendition, edge).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sim.scenario import Scenario
from sim.workload import FloatArray, session_mu

IntArray = npt.NDArray[np.int64]
CATCH_UP = 0.1  # hls.js plays up to 1.1x to get back to the live edge
RTT_SIGMA = 0.5  # lognormal spread of per-viewer round trips


class Probes:
    def __init__(self, sc: Scenario, rng: np.random.Generator, cap: int) -> None:
        self.sc, self.rng = sc, rng
        self.chan = np.zeros(cap, dtype=np.int64)
        self.rend = np.zeros(cap, dtype=np.int64)
        self.edge = np.zeros(cap, dtype=np.int64)
        self.t_start = np.zeros(cap)
        self.t_end = np.zeros(cap)
        self.behind = np.zeros(cap)
        self.offset = np.zeros(cap)  # joined this far behind hold-back (independent part)
        self.stall = np.zeros(cap)
        self.watch = np.zeros(cap)
        self.alive = np.zeros(cap, dtype=bool)
        self.part_bits = np.array(
            [r.bitrate_kbps * 1000 * sc.delivery.part_s for r in sc.workload.renditions])
        self.independent_s = np.array([r.independent_s for r in sc.workload.renditions])
        self.size = 0
        self.failed = 0
        self.started = 0
        self.departed = 0
        self.jumps = 0  # seeks back to the live edge
        self.sojourn_s = 0.0

    def _grow(self, extra: int) -> None:
        need = self.size + extra
        if need <= len(self.alive):
            return
        cap = max(need, 2 * len(self.alive))
        for name in ("chan", "rend", "edge", "t_start", "t_end", "behind", "offset", "stall",
                     "watch", "alive"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def join(self, k: int, now_s: float, *, p_cdf: FloatArray, q_cdf: FloatArray,
             route: FloatArray, served: FloatArray, active: FloatArray,
             join_wait_s: FloatArray, steady: bool = False) -> FloatArray:
        """Add k probes; return their startup delays (inf for failed joins). `steady`: they
        were already watching (t = 0), so their remaining time is the residual session."""
        if k == 0 or route.sum() <= 0:
            self.failed += k
            return np.full(k, np.inf)
        rng, d = self.rng, self.sc.delivery
        chan = np.searchsorted(p_cdf, rng.random(k) * p_cdf[-1])
        rend = np.searchsorted(q_cdf, rng.random(k) * q_cdf[-1])
        r_cdf = np.cumsum(route)
        edge = np.minimum(np.searchsorted(r_cdf, rng.random(k) * r_cdf[-1]), len(route) - 1)
        rtt = d.edge_rtt_ms / 1000 * rng.lognormal(0.0, RTT_SIGMA, k)
        s = served[edge]
        part_bits = self.part_bits[rend]
        with np.errstate(divide="ignore"):
            fetch = part_bits / (d.access_mbps * 1e6 * s)
        cold = rng.random(k) >= active[chan, rend, edge]
        startup = (np.where(chan == 0, join_wait_s[1], join_wait_s[0]) + 3 * rtt + fetch
                   + cold * d.origin_fetch_s + d.decode_s)
        ok = np.isfinite(startup)
        self.failed += int((~ok).sum())
        m = int(ok.sum())
        self._grow(m)
        sl = slice(self.size, self.size + m)
        self.chan[sl], self.rend[sl], self.edge[sl] = chan[ok], rend[ok], edge[ok]
        self.t_start[sl] = now_s
        w = self.sc.workload
        mu = session_mu(w)
        if steady:  # residual of a length-biased session: lognormal(mu + sigma^2) x U(0, 1)
            length = rng.lognormal(mu + w.session_sigma**2, w.session_sigma, m) * rng.random(m)
        else:
            length = rng.lognormal(mu, w.session_sigma, m)
        self.t_end[sl] = now_s + length
        self.behind[sl] = self.stall[sl] = self.watch[sl] = 0.0
        # drawn only when on: a scenario without it keeps its random stream (and results)
        self.offset[sl] = (rng.random(m) * self.independent_s[rend[ok]]
                           if self.independent_s.any() else 0.0)
        self.alive[sl] = True
        self.size += m
        self.started += m
        result: FloatArray = startup
        return result

    def step(self, now_s: float, dt_s: float, served: FloatArray, unreachable: npt.NDArray[
            np.bool_], lag_s: float) -> FloatArray:
        """Advance live probes one step; return their live latencies."""
        d, rng = self.sc.delivery, self.rng
        live = np.flatnonzero(self.alive[: self.size])
        if live.size == 0:
            return np.zeros(0)
        ends = self.t_end[live] <= now_s
        stuck = unreachable[self.edge[live]]
        quit_ = stuck & (rng.random(live.size) < -np.expm1(-dt_s / d.abandon_s))
        gone = live[ends | quit_]
        self.alive[gone] = False
        self.departed += gone.size
        self.sojourn_s += float(np.minimum(self.t_end[gone], now_s).sum()
                                - self.t_start[gone].sum())
        live = live[~(ends | quit_)]
        s = served[self.edge[live]]
        self.stall[live] += (1.0 - s) * dt_s
        self.watch[live] += dt_s
        b = self.behind[live]
        b = np.where(s < 1.0, b + (1.0 - s) * dt_s, np.maximum(0.0, b - CATCH_UP * dt_s))
        # too far behind: seek to the live edge once playing again (hls.js
        # liveMaxLatencyDuration = live_max_latency_segments target durations)
        jump = (b > d.live_max_latency_segments * d.segment_s) & (s > 0.0)
        self.jumps += int(jump.sum())
        self.behind[live] = np.where(jump, 0.0, b)
        rtt = d.edge_rtt_ms / 1000 * rng.lognormal(0.0, RTT_SIGMA, live.size)
        result: FloatArray = (d.pipeline_s + d.holdback_s + lag_s + self.offset[live]
                              + self.behind[live] + rtt)
        return result

    def move(self, src: npt.NDArray[np.bool_], dest: FloatArray) -> None:
        live = np.flatnonzero(self.alive[: self.size])
        hit = live[src[self.edge[live]]]
        if hit.size and dest.sum() > 0:
            cdf = np.cumsum(dest)
            self.edge[hit] = np.minimum(
                np.searchsorted(cdf, self.rng.random(hit.size) * cdf[-1]), len(dest) - 1)

    def live_count(self) -> int:
        return int(self.alive[: self.size].sum())
