"""One model step (viewers, delivery, join path, chat, database) and the run's outputs.

Kept apart from sim.model so the wiring of processes reads on one page; both work on the
same Model object, which owns all mutable state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sim.chat import chat_step
from sim.workload import FloatArray, arrival_rate

if TYPE_CHECKING:
    from sim.model import Model, RunResult

# per-step counts summed per window into ratios, not averaged into series
COUNTED = ("stall", "viewer_errors", "viewers_start", "joiners", "chat_lost", "chat_sent",
           "chat_refused", "chat_posted")


def step(m: Model, i: int) -> None:
    sc, dv, dt = m.sc, m.dv, m.dt
    w, ch, db = sc.workload, sc.chat, sc.database
    now = i * dt
    route = m._route(now)
    # viewers leave (lognormal sessions, booked at join), abandon dead edges; arrivals are a
    # Poisson process of the shape's rate, independent of who left
    before_k = dv.n.sum(axis=(1, 2))
    viewers_start = float(before_k.sum())
    if viewers_start > 0:
        dv.n *= max(0.0, 1.0 - m.departures.due[i] / viewers_start)
    dead = ~dv.edge_up
    leaving = dead & (now - np.nan_to_num(dv.down_since, nan=now) >= sc.delivery.abandon_after_s)
    abandoned = 0.0
    if leaving.any():
        gone = dv.n[:, :, leaving] * -math.expm1(-dt / sc.delivery.abandon_s)
        abandoned = float(gone.sum())
        left = float(dv.n.sum())
        dv.n[:, :, leaving] -= gone
        m.departures.scale_after(i, 1.0 - abandoned / left if left > 0 else 0.0)
    leaves_k = before_k - dv.n.sum(axis=(1, 2))
    joiners = float(m.rng.poisson(arrival_rate(w, now, dt) * dt))
    retries = m.join_retrying * -math.expm1(-dt / w.join_retry_s)
    attempts = joiners + retries
    join_ok = m.api_up > 0 and (m.db_up > 0 or db.read_cache)
    # join path: API requests, database reads, the channel row's viewer count
    api_wait, api_util = m.api.step(attempts / dt * w.join_api_requests, dt,
                                    up_fraction=m.api_up)
    joins_k = attempts * dv.p / dt if join_ok else np.zeros(w.channels)
    chan_v = dv.n.sum(axis=(1, 2))
    msgs_k = chan_v * w.chat_msgs_per_viewer_s * m.chat_factor
    posted = float(msgs_k.sum())
    if ch.room_rate_cap_msgs_s > 0:
        msgs_k = np.minimum(msgs_k, ch.room_rate_cap_msgs_s)
    limited = posted - float(msgs_k.sum())
    shard_k = m.chan_idx % db.shards
    count_ops = (joins_k + leaves_k / dt) if db.viewer_count == "row" else np.zeros(w.channels)
    ops_k = count_ops + msgs_k / db.chat_batch_rows
    ops_g = np.bincount(shard_k, ops_k, minlength=db.shards)
    reads = 0 if db.read_cache else w.join_db_reads
    ops_g += joins_k.sum() * reads / db.shards
    db_w = np.zeros(db.shards)
    db_util = 0.0
    for g, q in enumerate(m.db):
        db_w[g], u = q.step(float(ops_g[g]), dt, up_fraction=m.db_up)
        db_util = max(db_util, u)
    hot_wait, hot_util = m.hot.step(float(count_ops[0]), dt, up_fraction=m.db_up)
    row_s = db.query_ms / 1e3 if db.viewer_count == "row" else 0.0
    base_join = api_wait * w.join_api_requests + float(db_w.mean()) * reads + row_s
    join_wait = np.array([base_join, base_join + (hot_wait if db.viewer_count == "row" else 0)])
    # a refused viewer retries every join_retry_s until joins work: counted once, when new
    failed = 0.0 if join_ok else joiners
    if join_ok:
        m.join_retrying -= retries
        dv.add(attempts, route)
        m.departures.join(i, attempts)
    else:
        m.join_retrying += joiners
    # delivery: edges, shield, origin, transcode speed
    demand = m.tc.busy * m.ladder_cores
    speed = 1.0 if sc.transcode.admission == "slots" else min(1.0, m.tc_cores / max(demand, 1e-9))
    if speed < 1.0:
        m.lag_s = min(sc.transcode.max_lag_s, m.lag_s + (1.0 - speed) * dt)
    else:
        m.lag_s = max(0.0, m.lag_s - 0.1 * dt)
    ld = dv.loads(origin_up=m.origin_up, transcode_speed=speed)
    # probes: joins (startup) and live latency
    k = int(m.rng.poisson(attempts * m.probe_frac)) if join_ok else 0
    startup = m.probes.join(k, now, p_cdf=m.p_cdf, q_cdf=m.q_cdf, route=route,
                            served=ld.served, active=dv.active, join_wait_s=join_wait)
    wi = i // m.win
    m.startup[wi].append(startup[np.isfinite(startup)])
    lat = m.probes.step(now, dt, ld.served, dead, m.lag_s)
    m.latency[wi].append(lat)
    # chat: batched fan-out on gateways (sim.chat), persist on the channel's shard (sync)
    cs = chat_step(m, msgs_k, chan_v * w.chat_join_fraction)
    chat_lat = cs.latency_s
    lost_db = 0.0
    if ch.persist == "sync":
        if m.db_up > 0:
            chat_lat = chat_lat + db_w[shard_k] + db.query_ms / 1e3
        else:
            lost_db = float(msgs_k.sum()) * dt
    dropped = cs.lost_msgs
    lost_msgs = dropped + lost_db
    m.chat[wi].append((np.asarray(chat_lat, dtype=np.float64), cs.delivered_per_s * dt))
    chat_util = cs.util_max
    m.flag_rate = (float(msgs_k.sum()) * w.flag_fraction * m.flag_factor
                   * (1.0 - ch.auto_triage_fraction))
    cnt = m.counts
    cnt["attempts"] += attempts
    cnt["joiners"] += joiners
    cnt["failed"] += failed
    cnt["abandoned"] += abandoned
    cnt["sent"] += float(msgs_k.sum()) * dt
    cnt["lost"] += lost_msgs
    cnt["lost_overflow"] += float(dropped)
    cnt["lost_db"] += lost_db
    cnt["limited"] += limited * dt
    cnt["skipped"] += cs.skipped_per_s * dt
    cnt["arrived"] += joiners
    cdn = dv.cdn_of >= 0
    m.record(viewers=ld.viewers, egress_gbps=ld.egress_gbps, origin_rps=ld.origin_rps,
             cache_hit_ratio=ld.hit_ratio, stall=ld.stall_viewers,
             edge_util_max=float(ld.edge_util[cdn & dv.edge_up].max(initial=0.0)),
             origin_util=ld.origin_util, api_util=api_util, db_util_max=db_util,
             hot_key_util=hot_util, chat_util_max=chat_util,
             transcode_util=demand / m.tc_cores, transcode_cores=m.tc_cores,
             refused_streams=float(m.tc.blocked), lag_s=m.lag_s,
             viewer_errors=failed + abandoned, viewers_start=viewers_start, joiners=joiners,
             chat_lost=lost_msgs, chat_sent=float(msgs_k.sum()) * dt,
             chat_refused=limited * dt, chat_posted=posted * dt,
             mod_queue=float(len(m.mod.resource.queue)), arrivals_per_s=joiners / dt,
             live_jumps=float(m.probes.jumps))
    if (i + 1) % m.win == 0 or i + 1 == m.steps:
        new = np.array(m.mod.waits[m._mod_seen:])
        m._mod_seen = len(m.mod.waits)
        m.mod_wait.append(np.concatenate([new, np.array(m.mod.waiting_ages())]))


def _q(x: FloatArray, q: float) -> float:
    return float(np.quantile(x, q)) if x.size else math.nan


def _ratio(num: float, den: float) -> float:
    """A rate with nothing to count (no viewers, no messages) is NaN, which fails its SLO."""
    return num / den if den > 0 else math.nan


def weighted_quantile(values: FloatArray, weights: FloatArray, q: float) -> float:
    if values.size == 0 or weights.sum() <= 0:
        return math.nan
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


def collect(m: Model, events: int) -> RunResult:
    from sim.model import RunResult

    win = m.win
    rec = {k: np.asarray(v) for k, v in m.rec.items()}
    nwin = len(m.startup)

    def wmean(x: FloatArray) -> FloatArray:
        return np.array([x[j * win:(j + 1) * win].mean() for j in range(nwin)])

    def wsum(x: FloatArray) -> FloatArray:
        return np.array([x[j * win:(j + 1) * win].sum() for j in range(nwin)])

    series = {k: wmean(v) for k, v in rec.items() if k not in COUNTED}
    series["rebuffer_ratio"] = wsum(rec["stall"]) / np.maximum(wsum(rec["viewers"]), 1e-9)
    # sessions in a window: the viewers there at its start plus the joins attempted in it
    sessions = rec["viewers_start"][::win][:nwin] + wsum(rec["joiners"])
    series["viewer_error_rate"] = wsum(rec["viewer_errors"]) / np.maximum(sessions, 1e-9)
    series["chat_loss_rate"] = wsum(rec["chat_lost"]) / np.maximum(wsum(rec["chat_sent"]), 1e-9)
    series["chat_refusal_rate"] = (wsum(rec["chat_refused"])
                                   / np.maximum(wsum(rec["chat_posted"]), 1e-9))
    series["refused_streams"] = np.array([rec["refused_streams"][min(len(rec["refused_streams"]),
                                          (j + 1) * win) - 1] for j in range(nwin)])
    cat = [np.concatenate(x) if x else np.zeros(0) for x in m.startup]
    series["startup_p95_s"] = np.array([_q(x, 0.95) for x in cat])
    lat = [np.concatenate(x) if x else np.zeros(0) for x in m.latency]
    series["live_latency_p95_s"] = np.array([_q(x, 0.95) for x in lat])
    chat_v = [np.concatenate([a for a, _ in x]) for x in m.chat]
    chat_w = [np.concatenate([b for _, b in x]) for x in m.chat]
    series["chat_p99_s"] = np.array([weighted_quantile(v, wt, 0.99)
                                     for v, wt in zip(chat_v, chat_w, strict=True)])
    series["moderation_wait_p95_s"] = np.array([_q(x, 0.95) if x.size else 0.0
                                                for x in m.mod_wait])
    all_mod = np.concatenate([np.array(m.mod.waits), np.array(m.mod.waiting_ages())])
    cnt = m.counts
    sessions_total = float(rec["viewers_start"][0]) + cnt["joiners"]
    summary = {
        "startup_p95_s": _q(np.concatenate(cat), 0.95),
        "rebuffer_ratio": _ratio(float(rec["stall"].sum()), float(rec["viewers"].sum())),
        "live_latency_p95_s": _q(np.concatenate(lat), 0.95),
        "chat_delivery_p99_s": weighted_quantile(np.concatenate(chat_v),
                                                 np.concatenate(chat_w), 0.99),
        "viewer_error_rate": _ratio(cnt["failed"] + cnt["abandoned"], sessions_total),
        "chat_loss_rate": _ratio(cnt["lost"], cnt["sent"]),
        "moderation_wait_p95_s": _q(all_mod, 0.95),  # NaN without flags: fails its SLO
        "refused_stream_ratio": _ratio(m.tc.blocked, m.tc.offered),
        "peak_viewers": float(rec["viewers"].max()),
        "peak_egress_gbps": float(rec["egress_gbps"].max()),
        "peak_origin_rps": float(rec["origin_rps"].max()),
        "mean_viewers": float(rec["viewers"].mean()),
        "arrivals_per_s": cnt["arrived"] / (m.steps * m.dt),
        "chat_refusal_rate": _ratio(cnt["limited"], cnt["limited"] + cnt["sent"]),
        "chat_skipped_ratio": cnt["skipped"] / max(cnt["sent"], 1e-9),
        "live_jumps_per_probe": m.probes.jumps / max(m.probes.started, 1),
        "moderation_area": m.mod.in_system_area(),
        "moderation_arrived": float(m.mod.arrived),
        "moderation_mean_wait_s": float(np.mean(m.mod.waits)) if m.mod.waits else 0.0,
        "probe_started": float(m.probes.started),
        "probe_sojourn_s": m.probes.sojourn_s,
        "sessions": sessions_total,
        "viewers_refused": cnt["failed"],
        "viewers_abandoned": cnt["abandoned"],
        "chat_sent": cnt["sent"],
        "chat_lost_overflow": cnt["lost_overflow"],
        "chat_lost_db_down": cnt["lost_db"],
        "chat_rate_limited": cnt["limited"],
        "chat_skipped": cnt["skipped"],
        "simpy_events": float(events),
    }
    t: FloatArray = np.arange(nwin, dtype=np.float64) * win * m.dt
    return RunResult(t_s=t, series=series, summary=summary, events=events)
