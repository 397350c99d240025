"""The model's queueing stations against theory.

Two steps, both fast: (1) on common random numbers the SimPy stations give exactly the waits
and blockings of the Kiefer-Wolfowitz / slot recursions; (2) those recursions, vectorised
over many replications (millions of customers in seconds), match Erlang C and B within 2%
across utilisations 0.5-0.95. Replications per utilisation grow with utilisation, where the
variance of the mean wait grows as 1/(1 - rho)^2.
"""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.stations import (
    DelayStation,
    LossStation,
    erlang_b,
    erlang_c,
    feed,
    kiefer_wolfowitz,
    loss_recursion,
    mmc_wait,
)

RHOS = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def test_erlang_known_values() -> None:
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(10, 5.0) == pytest.approx(0.018384, rel=1e-4)
    assert erlang_c(1, 0.8) == pytest.approx(0.8)  # M/M/1: P(wait) = rho
    assert erlang_c(10, 8.0) == pytest.approx(0.409, abs=1e-3)
    assert mmc_wait(1, 0.8, 1.0) == pytest.approx(4.0)  # rho / (mu - lambda)
    assert mmc_wait(2, 2.5, 1.0) == float("inf")


def _one_row(rng: np.random.Generator, n: int, mu: float, lam: float) -> tuple[
        np.ndarray, np.ndarray]:
    return rng.exponential(1 / lam, n), rng.exponential(1 / mu, n)


def test_delay_station_equals_recursion_on_common_random_numbers() -> None:
    rng = np.random.default_rng(3)
    servers, n = 3, 3000
    inter, service = _one_row(rng, n, 1.0, 2.7)
    env = simpy.Environment()
    st = DelayStation(env, servers)
    env.process(feed(env, inter, lambda i: st.serve(float(service[i]))))
    env.run()
    v = np.zeros(servers)
    expected = []
    for i in range(n):
        j = int(v.argmin())
        expected.append(v[j])
        v[j] += service[i]
        v = np.maximum(v - inter[i], 0.0)
    assert np.allclose(st.waits, expected, atol=1e-9)


def test_loss_station_equals_recursion_on_common_random_numbers() -> None:
    rng = np.random.default_rng(4)
    servers, n = 4, 3000
    inter, service = _one_row(rng, n, 1.0, 3.5)
    env = simpy.Environment()
    st = LossStation(env, servers)
    env.process(feed(env, inter, lambda i: st.offer(float(service[i]))))
    env.run()
    v = np.zeros(servers)
    blocked = 0
    for i in range(n):
        j = int(v.argmin())
        if v[j] <= 0:
            v[j] = service[i]
        else:
            blocked += 1
        v = np.maximum(v - inter[i], 0.0)
    assert st.blocked == blocked
    assert st.offered == n


def test_mmc_agrees_with_erlang_c_within_2_percent() -> None:
    servers = 8
    rows = [150, 120, 120, 150, 300, 1000]
    lam = np.concatenate([np.full(k, r * servers) for r, k in zip(RHOS, rows, strict=True)])
    mean_w, p_wait = kiefer_wolfowitz(np.random.default_rng(8), lam, 1.0, servers,
                                      customers=26_000, warmup=4_000)
    at = 0
    for rho, k in zip(RHOS, rows, strict=True):
        a = rho * servers
        assert p_wait[at:at + k].mean() == pytest.approx(erlang_c(servers, a), rel=0.02), rho
        assert mean_w[at:at + k].mean() == pytest.approx(mmc_wait(servers, a, 1.0),
                                                         rel=0.02), rho
        at += k


def test_mmcc_agrees_with_erlang_b_within_2_percent() -> None:
    servers, rows = 5, 3000
    lam = np.concatenate([np.full(rows, r * servers) for r in RHOS])
    blocked = loss_recursion(np.random.default_rng(9), lam, 1.0, servers, customers=500,
                             warmup=60)
    for i, rho in enumerate(RHOS):
        got = blocked[i * rows:(i + 1) * rows].mean()
        assert got == pytest.approx(erlang_b(servers, rho * servers), rel=0.02), rho
