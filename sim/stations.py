"""Queueing stations: Erlang formulas, the SimPy stations the model uses, and references.

The model's discrete parts (moderators, transcoder slots) are SimPy stations; its fluid
parts (API, database shards, chat gateways) take their waits from Erlang C. Tests check
both against theory: the SimPy stations reproduce the Kiefer-Wolfowitz / slot recursions
exactly on common random numbers, and the recursions (vectorised over many replications,
so millions of customers run in seconds) agree with Erlang B and C within 2%.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

FloatArray = npt.NDArray[np.float64]


def erlang_b(servers: int, offered: float) -> float:
    """Blocking probability of M/M/c/c with `offered` erlangs (stable recursion)."""
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    return b


def erlang_c(servers: int, offered: float) -> float:
    """Probability an arrival waits in M/M/c; 1.0 when the station is overloaded."""
    if offered >= servers:
        return 1.0
    b = erlang_b(servers, offered)
    return servers * b / (servers - offered * (1.0 - b))


def mmc_wait(servers: int, offered: float, service_s: float, quantile: float = -1.0) -> float:
    """Mean wait in queue (quantile < 0) or its quantile, for M/M/c; inf if overloaded."""
    if offered >= servers:
        return math.inf
    c = erlang_c(servers, offered)
    rate = (servers - offered) / service_s
    if quantile < 0:
        return c / rate
    return math.log(c / (1.0 - quantile)) / rate if c > 1.0 - quantile else 0.0


class DelayStation:
    """FIFO station with c servers and an unbounded queue (M/M/c when fed Poisson)."""

    def __init__(self, env: simpy.Environment, servers: int) -> None:
        self.env = env
        self.resource = simpy.Resource(env, capacity=servers)
        self.waits: list[float] = []
        self.wait_started_s: list[float] = []  # when each wait ended (service start)
        self.arrived = 0
        self.area = 0.0  # integral of number in system over time (Little's law)
        self._n = 0
        self._t = 0.0

    def _account(self, delta: int) -> None:
        now = self.env.now
        self.area += self._n * (now - self._t)
        self._t = now
        self._n += delta

    def in_system_area(self) -> float:
        return self.area + self._n * (self.env.now - self._t)

    def serve(self, service_s: float) -> Generator[simpy.Event, Any, None]:
        arrive = self.env.now
        self.arrived += 1
        self._account(+1)
        with self.resource.request() as req:
            yield req
            self.waits.append(self.env.now - arrive)
            self.wait_started_s.append(self.env.now)
            yield self.env.timeout(service_s)
        self._account(-1)

    def waiting_ages(self) -> list[float]:
        """How long each customer still in the queue has waited (censored waits)."""
        now = self.env.now
        return [now - r.time for r in self.resource.queue if hasattr(r, "time")]


class LossStation:
    """c servers, no queue (M/M/c/c when fed Poisson); capacity may change (autoscaling)."""

    def __init__(self, env: simpy.Environment, servers: float) -> None:
        self.env = env
        self.capacity = servers
        self.busy = 0
        self.offered = 0
        self.blocked = 0

    def offer(self, hold_s: float) -> Generator[simpy.Event, Any, None]:
        self.offered += 1
        if self.busy >= self.capacity:
            self.blocked += 1
            return
        self.busy += 1
        yield self.env.timeout(hold_s)
        self.busy -= 1


def feed(env: simpy.Environment, inter_s: FloatArray,
         start: Any) -> Generator[simpy.Event, Any, None]:
    """Start customer i after inter_s[i-1]: a fixed arrival stream for CRN comparisons."""
    for i, gap in enumerate(inter_s):
        env.process(start(i))
        yield env.timeout(float(gap))


def kiefer_wolfowitz(rng: np.random.Generator, lam: FloatArray, mu: float, servers: int,
                     customers: int, warmup: int,
                     block: int = 512) -> tuple[FloatArray, FloatArray]:
    """FCFS M/M/c by the workload-vector recursion, one row per replication.

    Returns (mean wait, share of customers who waited) per row, after `warmup` customers.
    """
    rows = lam.shape[0]
    v = np.zeros((rows, servers))
    idx = np.arange(rows)
    total = np.zeros(rows)
    waited = np.zeros(rows)
    for start in range(0, customers, block):
        size = min(block, customers - start)
        service = rng.exponential(1.0 / mu, size=(size, rows))
        inter = rng.exponential(1.0, size=(size, rows)) / lam
        for i in range(size):
            j = v.argmin(axis=1)
            w = v[idx, j]
            if start + i >= warmup:
                total += w
                waited += w > 0
            v[idx, j] = w + service[i]
            v -= inter[i][:, None]
            np.maximum(v, 0.0, out=v)
    n = customers - warmup
    return total / n, waited / n


def loss_recursion(rng: np.random.Generator, lam: FloatArray, mu: float, servers: int,
                   customers: int, warmup: int) -> FloatArray:
    """M/M/c/c blocking share per row (replication), after `warmup` customers."""
    rows = lam.shape[0]
    v = np.zeros((rows, servers))
    idx = np.arange(rows)
    blocked = np.zeros(rows)
    service = rng.exponential(1.0 / mu, size=(customers, rows))
    inter = rng.exponential(1.0, size=(customers, rows)) / lam
    for i in range(customers):
        j = v.argmin(axis=1)
        free = v[idx, j] <= 0.0
        if i >= warmup:
            blocked += ~free
        v[idx[free], j[free]] = service[i][free]
        v -= inter[i][:, None]
        np.maximum(v, 0.0, out=v)
    return blocked / (customers - warmup)
