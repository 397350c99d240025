"""Workload helpers shared by the estimate and the model: popularity, the arrival shape and
rate, and lognormal sessions (survival, steady-state residual, booked departures)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sim.scenario import Workload

FloatArray = npt.NDArray[np.float64]


def channel_weights(w: Workload) -> FloatArray:
    """Share of viewers per channel: Zipf(s) over channels, plus a hot channel 0 (an event)."""
    ranks = np.arange(1, w.channels + 1, dtype=np.float64)
    p = ranks**-w.zipf_s
    p /= p.sum()
    p *= 1.0 - w.hot_channel_share
    p[0] += w.hot_channel_share
    return p


def shape_at(w: Workload, t_s: float) -> float:
    """Fraction of peak viewers wanted at t_s (linear between the shape's points)."""
    times = [t for t, _ in w.shape]
    fracs = [f for _, f in w.shape]
    return float(np.interp(t_s, times, fracs))


def session_mu(w: Workload) -> float:
    """Lognormal mu for sessions of mean `session_mean_s` and shape `session_sigma`."""
    return float(np.log(w.session_mean_s) - w.session_sigma**2 / 2)


_ERFC = np.vectorize(math.erfc, otypes=[np.float64])


def ndtr(z: FloatArray) -> FloatArray:
    """Standard normal CDF (erfc keeps the tails accurate; +-inf give 0 and 1)."""
    out: FloatArray = 0.5 * _ERFC(-np.asarray(z, dtype=np.float64) / math.sqrt(2.0))
    return out


def session_survival(w: Workload, t_s: FloatArray) -> FloatArray:
    """P(session > t) for a fresh session (lognormal)."""
    with np.errstate(divide="ignore"):
        z = (np.log(t_s) - session_mu(w)) / w.session_sigma
    out: FloatArray = 1.0 - ndtr(z)
    return out


def residual_survival(w: Workload, t_s: FloatArray) -> FloatArray:
    """P(remaining session > t) for a viewer present in the steady state (equilibrium residual
    life): E[(L - t)+] / E[L] = Phi(d1) - t/mean * Phi(d2) for lognormal L."""
    mu, s = session_mu(w), w.session_sigma
    with np.errstate(divide="ignore"):
        lt = np.log(t_s)
    out: FloatArray = (ndtr((mu + s * s - lt) / s)
                       - t_s / w.session_mean_s * ndtr((mu - lt) / s))
    return out


def arrival_rate(w: Workload, t_s: float, dt_s: float) -> float:
    """Mean joins per second over [t, t + dt): the shape's level / mean session (what keeps
    the level in the steady state) plus its rise (a surge); a fall is left to departures."""
    level = w.peak_viewers * shape_at(w, t_s + dt_s / 2) / w.session_mean_s
    rise = w.peak_viewers * (shape_at(w, t_s + dt_s) - shape_at(w, t_s)) / dt_s
    return max(0.0, level + max(0.0, rise))


class Departures:
    """Viewers due to leave per step, from lognormal sessions (age-structured, unlike a
    constant per-step hazard): each join books its departures over the following steps."""

    def __init__(self, w: Workload, dt_s: float, steps: int, initial: float) -> None:
        edges = np.arange(steps + 2, dtype=np.float64) * dt_s
        self.fresh_pmf: FloatArray = -np.diff(session_survival(w, edges))
        self.due: FloatArray = np.zeros(steps + 1)
        self.due += initial * -np.diff(residual_survival(w, edges))[: steps + 1]

    def join(self, i: int, viewers: float) -> None:
        """`viewers` joined at the end of step i: they leave from step i + 1 on."""
        tail = self.due[i + 1:]
        tail += viewers * self.fresh_pmf[: tail.size]

    def scale_after(self, i: int, keep: float) -> None:
        """Some viewers left early (abandoned): their booked departures go too."""
        self.due[i + 1:] *= keep
