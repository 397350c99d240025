"""Chat fan-out as the platform's gateway does it (services/chat/fanout.py).

Posts are appended to a room's pending list; at most once per `batch_interval_s` the
gateway encodes each dirty room's batch once and writes the same frame to every member
there. A room delivers at most `viewer_cap_per_s` messages a second (a token bucket); past
it its batches are evenly sampled, and the rest are *skipped* (a busy room shows a sample),
not lost. So a gateway's CPU goes per frame: `chat_encode_us` once per room batch plus
`chat_delivery_us` per recipient, plus `bus_publish_us` per message it receives.
A room with message rate d has busy batch intervals with P = 1 - exp(-d * interval), so
(1 - exp(-d * interval)) / interval frames per second; a message in a busy room waits up
to one interval for its batch (the first after a quiet spell goes at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.workload import FloatArray

if TYPE_CHECKING:
    from sim.model import Model

CHAT_HOP_S = 0.002  # gateway -> bus -> gateway network hop


@dataclass(frozen=True)
class ChatStep:
    latency_s: FloatArray  # per room: send to delivery of its delivered messages
    delivered_per_s: FloatArray  # per room
    skipped_per_s: float  # sampled out past viewer_cap_per_s (shown as a count, not lost)
    lost_msgs: float  # dropped by a gateway backlog over its bound, this step
    util_max: float


def frames_per_s(delivered_per_s: FloatArray, interval_s: float) -> FloatArray:
    out: FloatArray = -np.expm1(-delivered_per_s * interval_s) / interval_s
    return out


def chat_step(m: Model, msgs_k: FloatArray, members_k: FloatArray) -> ChatStep:
    sc, dt = m.sc, m.dt
    ch, c = sc.chat, sc.costs
    cap = ch.viewer_cap_per_s
    d_k = np.minimum(msgs_k, cap) if cap > 0 else msgs_k
    skipped = float((msgs_k - d_k).sum())
    f_k = frames_per_s(d_k, ch.batch_interval_s)
    per_frame_s = c.chat_encode_us / 1e6
    per_recipient_s = c.chat_delivery_us / 1e6
    batch_wait = ch.batch_interval_s * -np.expm1(-d_k * ch.batch_interval_s)
    fixed = CHAT_HOP_S + c.bus_publish_us / 1e6 + c.moderate_us / 1e6
    lost = 0.0
    if ch.placement == "spread":  # every gateway holds 1/G of each room's members
        share = members_k / ch.gateways
        frames = float(f_k.sum())
        work = float(f_k @ (per_frame_s + share * per_recipient_s)
                     + msgs_k.sum() * c.bus_publish_us / 1e6)
        gw = m.gw[0]
        gw.service_s = work / frames if frames > 0 else 1e-3
        wq, util = gw.step(frames, dt, quantile=0.99)
        lost = _msgs(gw.dropped_jobs, d_k, frames)
        gw.dropped_jobs = 0.0
        latency = wq + batch_wait + per_frame_s + share * per_recipient_s + fixed
    else:  # a room lives on one gateway
        g_k = m.chan_idx % ch.gateways
        frames_g = np.bincount(g_k, f_k, minlength=ch.gateways)
        work_g = np.bincount(g_k, f_k * (per_frame_s + members_k * per_recipient_s),
                             minlength=ch.gateways)
        wq_g = np.zeros(ch.gateways)
        util = 0.0
        for g, gw in enumerate(m.gw):
            gw.service_s = work_g[g] / frames_g[g] if frames_g[g] > 0 else 1e-3
            wq_g[g], u = gw.step(float(frames_g[g]), dt, quantile=0.99)
            util = max(util, u)
            lost += _msgs(gw.dropped_jobs, d_k[g_k == g], float(frames_g[g]))
            gw.dropped_jobs = 0.0
        latency = (wq_g[g_k] + batch_wait + per_frame_s + members_k * per_recipient_s
                   + fixed)
    return ChatStep(latency_s=np.asarray(latency, dtype=np.float64), delivered_per_s=d_k,
                    skipped_per_s=skipped, lost_msgs=lost, util_max=float(util))


def _msgs(dropped_frames: float, d_k: FloatArray, frames: float) -> float:
    """Messages in the dropped frames (each frame carries delivered / frames of them)."""
    if dropped_frames <= 0 or frames <= 0:
        return 0.0
    return float(dropped_frames * d_k.sum() / frames) if math.isfinite(frames) else 0.0
