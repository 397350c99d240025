"""The capacity model of the seed's design, as one SimPy run.

Covers: viewer cohorts per (channel, rendition, edge) with probe viewers (sim.delivery,
sim.probes); edges, shield and origin; the transcoder pool as a loss station of ladder slots
or a shared CPU pool, with an autoscaler; chat gateways with batched fan-out (sim.chat) and
persist-then-broadcast; database shards with the hot `Streams.viewer_count` row; human
moderation as an M/M/c station; Poisson arrivals and lognormal sessions (sim.workload);
faults on a timeline. Discrete SimPy processes carry what is rare (streams, flags, faults,
scaling); one tick process per step moves the fluid parts. Same seed, same run.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from sim.delivery import Delivery
from sim.fluid import FluidQueue
from sim.probes import Probes
from sim.scenario import Fault, Scenario
from sim.stations import DelayStation, LossStation
from sim.tick import collect, step
from sim.workload import Departures, FloatArray, shape_at

EDGE_FAILOVER_S = 10.0  # a CDN moves viewers off a dead edge inside its own fleet
CHAT_MAX_BACKLOG_S = 10.0  # a client queue this far behind overflows: client dropped


@dataclass
class RunResult:
    t_s: FloatArray  # window starts
    series: dict[str, FloatArray]
    summary: dict[str, float]
    events: int
    samples: dict[str, FloatArray] = field(default_factory=dict)


class Model:
    def __init__(self, sc: Scenario, seed: int) -> None:
        self.sc = sc
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(seed)
        w = sc.workload
        self.dt = sc.run.step_s
        self.steps = max(1, round(sc.run.duration_s / self.dt))
        self.dv = Delivery(sc)
        self.probe_frac = w.probe_viewers / w.peak_viewers
        self.probes = Probes(sc, self.rng, cap=4 * w.probe_viewers + 64)
        self.p_cdf = np.cumsum(self.dv.p)
        self.q_cdf = np.cumsum(self.dv.q)
        self.ladder_cores = sum(r.transcode_cores for r in w.renditions)
        self.tc_cores = sc.transcode.cores
        self.tc_pending = 0.0
        self.tc = LossStation(self.env, self._slots())
        self.lag_s = 0.0
        self.mod = DelayStation(self.env, max(1, sc.chat.moderators))
        self.flag_rate = 0.0
        self.origin_up = self.api_up = self.db_up = 1.0
        self.join_retrying = 0.0  # viewers refused at join, retrying every join_retry_s
        self.chat_factor = self.flag_factor = 1.0
        c = sc.costs
        self.api = FluidQueue(sc.api.cores, c.api_request_us / 1e6)
        self.db = [FluidQueue(sc.database.connections_per_shard, sc.database.query_ms / 1e3)
                   for _ in range(sc.database.shards)]
        self.hot = FluidQueue(1, 1.0 / sc.database.hot_key_ops_per_s)
        self.gw = [FluidQueue(sc.chat.cores_per_gateway, 1e-3, max_wait_s=CHAT_MAX_BACKLOG_S)
                   for _ in range(sc.chat.gateways)]
        self.chan_idx = np.arange(w.channels)
        self.rec: dict[str, list[float]] = {}
        self.win = max(1, round(sc.run.window_s / self.dt))
        nwin = math.ceil(self.steps / self.win)
        self.startup: list[list[FloatArray]] = [[] for _ in range(nwin)]
        self.latency: list[list[FloatArray]] = [[] for _ in range(nwin)]
        self.chat: list[list[tuple[FloatArray, FloatArray]]] = [[] for _ in range(nwin)]
        self.mod_wait: list[FloatArray] = []
        self._mod_seen = 0
        self.counts = dict.fromkeys(("attempts", "failed", "abandoned", "sent", "lost", "joiners",
                                     "lost_overflow", "lost_db", "limited", "arrived",
                                     "skipped"), 0.0)
        v0 = w.peak_viewers * shape_at(w, 0.0)
        route0 = self.dv.base_route
        self.dv.add(v0, route0)
        self.departures = Departures(w, self.dt, self.steps, v0)  # v0 in the steady state
        self.probes.join(self.rng.poisson(v0 * self.probe_frac), 0.0, p_cdf=self.p_cdf,
                         q_cdf=self.q_cdf, route=route0, served=np.ones(self.dv.edges),
                         active=np.ones_like(self.dv.n), join_wait_s=np.zeros(2),
                         steady=True)

    # -- transcoder pool -------------------------------------------------------------------
    def _slots(self) -> float:
        if self.sc.transcode.admission == "slots":
            return math.floor(self.tc_cores / self.ladder_cores)
        return math.inf

    def _streams(self) -> Generator[simpy.Event, Any, None]:
        w = self.sc.workload
        for _ in range(w.streams):
            self.env.process(self.tc.offer(self.rng.exponential(w.stream_mean_s)))
        while True:
            yield self.env.timeout(self.rng.exponential(w.stream_mean_s / w.streams))
            self.env.process(self.tc.offer(self.rng.exponential(w.stream_mean_s)))

    def _spike(self, f: Fault) -> Generator[simpy.Event, Any, None]:
        extra = round((f.factor - 1.0) * self.sc.workload.streams)
        ramp = 0.1 * f.duration_s
        for _ in range(extra):
            yield self.env.timeout(ramp / max(1, extra))
            hold = (f.duration_s - ramp) * self.rng.uniform(0.5, 1.0)
            self.env.process(self.tc.offer(hold))

    def _autoscaler(self) -> Generator[simpy.Event, Any, None]:
        t = self.sc.transcode
        while True:
            yield self.env.timeout(t.autoscale_interval_s)
            util = self.tc.busy * self.ladder_cores / self.tc_cores
            room = t.autoscale_max_cores - self.tc_cores - self.tc_pending
            if util > t.autoscale_target and room > 0:
                step = min(t.autoscale_step_cores, room)
                self.tc_pending += step
                self.env.process(self._provision(step))

    def _provision(self, cores: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.sc.transcode.autoscale_delay_s)
        self.tc_pending -= cores
        self.tc_cores += cores
        self.tc.capacity = self._slots()

    # -- moderation ------------------------------------------------------------------------
    def _flags(self) -> Generator[simpy.Event, Any, None]:
        while True:
            if self.flag_rate <= 0:
                yield self.env.timeout(self.dt)
                continue
            yield self.env.timeout(self.rng.exponential(1.0 / self.flag_rate))
            self.env.process(self.mod.serve(self.rng.exponential(self.sc.chat.review_s)))

    # -- faults ----------------------------------------------------------------------------
    def _fault(self, f: Fault) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(f.at_s)
        sc, dv = self.sc, self.dv
        edges = np.flatnonzero(dv.cdn_of == next(
            (i for i, c in enumerate(sc.cdns) if c.name == f.target), -2))
        hit = edges if f.kind == "cdn_down" else edges[: max(1, int(f.factor))]
        duration = f.duration_s
        if f.kind in ("cdn_down", "edge_down"):
            dv.edge_up[hit] = False
            dv.down_since[hit] = self.env.now
        elif f.kind == "origin_down":
            self.origin_up = max(0.0, 1.0 - f.factor / sc.origin.instances)
        elif f.kind == "api_down":
            self.api_up = max(0.0, 1.0 - f.factor / sc.api.instances)
        elif f.kind == "db_down":
            self.db_up = 0.0
            if sc.database.standby:
                duration = min(duration, sc.database.failover_s)
        elif f.kind == "chat_flood":
            self.chat_factor *= f.factor
        elif f.kind == "flag_spike":
            self.flag_factor *= f.factor
        elif f.kind == "ingest_spike":
            self.env.process(self._spike(f))
        yield self.env.timeout(duration)
        if f.kind in ("cdn_down", "edge_down"):
            dv.edge_up[hit] = True
            dv.down_since[hit] = np.nan
            yield self.env.timeout(sc.delivery.failover_s)  # players drift back via DNS
            src = np.zeros(dv.edges, dtype=bool)
            src[dv.origin_edge] = True
            dest = self._dest(dv.origin_edge)
            dv.move(src, dest)
            self.probes.move(src, dest)
        elif f.kind == "origin_down":
            self.origin_up = 1.0
        elif f.kind == "api_down":
            self.api_up = 1.0
        elif f.kind == "db_down":
            self.db_up = 1.0
        elif f.kind == "chat_flood":
            self.chat_factor /= f.factor
        elif f.kind == "flag_spike":
            self.flag_factor /= f.factor

    def _dest(self, e: int) -> FloatArray:
        """Where viewers of dead edge e go: its CDN's live edges, else the failover path."""
        dv = self.dv
        dest = np.zeros(dv.edges)
        same = (dv.cdn_of == dv.cdn_of[e]) & dv.edge_up & (dv.cdn_of >= 0)
        if dv.cdn_of[e] >= 0 and same.any():
            dest[same] = dv.base_route[same]
            out: FloatArray = dest / dest.sum()
            return out
        if e == dv.origin_edge:
            alive = dv.edge_up & (dv.cdn_of >= 0)
            dest[alive] = dv.base_route[alive]
            return dest / max(float(dest.sum()), 1e-300)
        return dv.failover_dest()

    def _route(self, now: float) -> FloatArray:
        """Arrivals' edges; a dead edge keeps getting viewers until its failover delay."""
        dv = self.dv
        r = dv.base_route.copy()
        for e in map(int, np.flatnonzero(~dv.edge_up)):
            same = (dv.cdn_of == dv.cdn_of[e]) & dv.edge_up
            delay = EDGE_FAILOVER_S if same.any() else self.sc.delivery.failover_s
            if now - dv.down_since[e] >= delay:
                dest = self._dest(e)
                if dest.sum() > 0:
                    src = np.zeros(dv.edges, dtype=bool)
                    src[e] = True
                    dv.move(src, dest)
                    self.probes.move(src, dest)
                    r += r[e] * dest
                    r[e] = 0.0
        return r

    # -- the step ----------------------------------------------------------------------------
    def _tick(self) -> Generator[simpy.Event, Any, None]:
        for i in range(self.steps):
            step(self, i)
            yield self.env.timeout(self.dt)

    def record(self, **values: float) -> None:
        for k, v in values.items():
            self.rec.setdefault(k, []).append(v)

    def run(self) -> RunResult:
        env, sc = self.env, self.sc
        env.process(self._tick())
        env.process(self._streams())
        env.process(self._flags())
        if sc.transcode.autoscale_step_cores > 0:
            env.process(self._autoscaler())
        for f in sc.faults:
            env.process(self._fault(f))
        until = self.steps * self.dt
        events = 0
        while env.peek() < until:
            env.step()
            events += 1
        return collect(self, events)
