"""Workload helpers shared by the estimate and the model: popularity and the arrival shape."""

from __future__ import annotations

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
