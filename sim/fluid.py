"""Fluid queues for the high-rate stations (API, database shards, hot rows, chat gateways).

At 1M viewers these see millions of jobs an hour, too many to simulate one by one in time:
while stable they take the M/M/c wait (Erlang C) at the step's load; past saturation the
excess piles up as a backlog that drains when load drops, so overloads leave a tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.stations import mmc_wait

STABLE_CAP = 0.98  # Erlang C diverges at 1; beyond this the backlog term takes over


@dataclass
class FluidQueue:
    servers: float
    service_s: float
    backlog_jobs: float = 0.0
    max_wait_s: float = math.inf  # bounded queue: jobs beyond this wait are dropped
    dropped_jobs: float = 0.0

    def step(self, rate_per_s: float, dt_s: float, *, up_fraction: float = 1.0,
             quantile: float = -1.0) -> tuple[float, float]:
        """Advance one step; return (wait_s, utilisation). wait is mean or quantile."""
        servers = self.servers * up_fraction
        if servers <= 0:
            return math.inf, math.inf
        capacity = servers / self.service_s
        self.backlog_jobs = max(0.0, self.backlog_jobs + (rate_per_s - capacity) * dt_s)
        cap_jobs = self.max_wait_s * capacity
        if self.backlog_jobs > cap_jobs:
            self.dropped_jobs += self.backlog_jobs - cap_jobs
            self.backlog_jobs = cap_jobs
        util = rate_per_s / capacity
        c = max(1, round(servers))
        scale = c / servers  # keep the load ratio when servers is not whole
        offered = min(util, STABLE_CAP) * c
        wait = mmc_wait(c, offered, self.service_s * scale, quantile)
        return wait + self.backlog_jobs / capacity, util
