"""Replications, confidence intervals and SLO verdicts for a scenario and its fix variants.

Each replication is an independent seed drawn from the scenario seed (numpy SeedSequence),
so the whole set is deterministic; intervals are Student-t 95% over replications.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from sim.model import Model, RunResult
from sim.scenario import Scenario, Slo
from sim.workload import FloatArray

SLO_METRICS = {  # summary metric -> (Slo field, per-window series)
    "startup_p95_s": ("startup_p95_s", "startup_p95_s"),
    "rebuffer_ratio": ("rebuffer_ratio", "rebuffer_ratio"),
    "live_latency_p95_s": ("live_latency_p95_s", "live_latency_p95_s"),
    "chat_delivery_p99_s": ("chat_delivery_p99_s", "chat_p99_s"),
    "viewer_error_rate": ("viewer_error_rate", "viewer_error_rate"),
    "chat_loss_rate": ("chat_loss_rate", "chat_loss_rate"),
    "chat_refusal_rate": ("chat_refusal_rate", "chat_refusal_rate"),
    "moderation_wait_p95_s": ("moderation_wait_p95_s", "moderation_wait_p95_s"),
    "refused_stream_ratio": ("refused_stream_ratio", "refused_streams"),
}
SLO_COUNTS = {  # what each verdict counts; scenarios/README.md says the same at length
    "startup_p95_s": "p95 over probe viewers of join to first frame (s); failed joins are "
                     "not in it (viewer_error_rate)",
    "rebuffer_ratio": "stalled viewer-seconds / watched viewer-seconds (media not delivered "
                      "on time by edge, origin or transcoder)",
    "live_latency_p95_s": "p95 over probe viewers and steps of capture to screen (s)",
    "chat_delivery_p99_s": "p99 over delivered messages of send to delivery (s), batching "
                           "wait included; lost, refused and sampled-out messages are not in it",
    "viewer_error_rate": "(viewers refused at join + viewers who left a dead edge/CDN) / "
                         "(viewers at start + viewers who came to join); a retrying viewer "
                         "counts once; stalls on a live path are rebuffer_ratio",
    "chat_loss_rate": "(messages dropped by a gateway queue over 10 s behind + messages sent "
                      "while the DB is down with sync persist) / messages accepted; slow-mode "
                      "refusals (chat_refusal_rate) and messages a busy room sampled out "
                      "(viewer_cap_per_s, shown as skipped) are not losses",
    "chat_refusal_rate": "posts refused by slow mode (room_rate_cap_msgs_s) / posts attempted",
    "moderation_wait_p95_s": "p95 of flagged messages' wait for a human moderator (s), "
                             "still-waiting ones at their age",
    "refused_stream_ratio": "streams refused by transcode admission / streams offered",
}
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]  # df 1..10


@dataclass(frozen=True)
class Verdict:
    metric: str
    slo: float
    mean: float
    half_width: float
    passed: bool
    failing_from_s: float | None  # first window over the SLO
    reason: str = ""  # why it failed: over the SLO, or no finite value (NaN / no samples)


@dataclass(frozen=True)
class ScenarioRun:
    name: str
    description: str
    scenario: Scenario
    t_s: FloatArray
    series: dict[str, FloatArray]  # mean over replications
    summary: dict[str, tuple[float, float]]  # metric -> (mean, 95% half-width)
    verdicts: list[Verdict]
    events: int
    replications: list[RunResult]

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def t95(df: int) -> float:
    return T95[df - 1] if df <= len(T95) else 1.96


def mean_ci(values: list[float]) -> tuple[float, float]:
    x = np.array(values, dtype=np.float64)
    x = np.where(np.isfinite(x), x, np.nan)
    if np.isnan(x).all():
        return math.nan, math.nan
    m = float(np.nanmean(x))
    n = int(np.sum(~np.isnan(x)))
    if n < 2:
        return m, math.nan
    return m, t95(n - 1) * float(np.nanstd(x, ddof=1)) / math.sqrt(n)


def with_overrides(sc: Scenario, *, duration_s: float | None = None,
                   replications: int | None = None, seed: int | None = None) -> Scenario:
    run = sc.run
    if duration_s is not None:
        run = dataclasses.replace(run, duration_s=duration_s)
    if replications is not None:
        run = dataclasses.replace(run, replications=replications)
    if seed is not None:
        run = dataclasses.replace(run, seed=seed)
    variants = tuple(dataclasses.replace(v, scenario=with_overrides(
        v.scenario, duration_s=duration_s, replications=replications, seed=seed))
        for v in sc.variants)
    return dataclasses.replace(sc, run=run, variants=variants)


def run_scenario(sc: Scenario, *, label: str = "as given", description: str = "") -> ScenarioRun:
    seeds = np.random.SeedSequence(sc.run.seed).spawn(sc.run.replications)
    results = [Model(sc, int(s.generate_state(1)[0])).run() for s in seeds]
    keys = results[0].series
    series = {k: np.nanmean(np.array([r.series[k] for r in results]), axis=0)
              if len(results) > 1 else results[0].series[k] for k in keys}
    summary = {k: mean_ci([r.summary[k] for r in results]) for k in results[0].summary}
    verdicts = [_verdict(sc.slo, metric, summary[metric], series[s_key], results[0].t_s,
                         slo_field) for metric, (slo_field, s_key) in SLO_METRICS.items()]
    return ScenarioRun(name=label, description=description or sc.description, scenario=sc,
                       t_s=results[0].t_s, series=series, summary=summary, verdicts=verdicts,
                       events=sum(r.events for r in results), replications=results)


def _verdict(slo: Slo, metric: str, stat: tuple[float, float], series: FloatArray,
             t_s: FloatArray, slo_field: str) -> Verdict:
    limit = float(getattr(slo, slo_field))
    mean, hw = stat
    passed = bool(np.isfinite(mean) and mean <= limit)  # NaN or no samples: not a pass
    if math.isnan(mean):
        reason = "no finite value (NaN: no samples in any replication)"
    elif not passed:
        reason = f"{mean:.4g} over the SLO {limit:.4g}"
    else:
        reason = ""
    if metric == "refused_stream_ratio":
        over = np.zeros(len(series), dtype=bool)
    else:
        over = np.nan_to_num(series, nan=0.0, posinf=np.inf) > limit
    first = float(t_s[np.argmax(over)]) if over.any() else None
    return Verdict(metric=metric, slo=limit, mean=mean, half_width=hw, passed=passed,
                   failing_from_s=first, reason=reason)


def run_all(sc: Scenario) -> list[ScenarioRun]:
    """The scenario as given, then each fix variant."""
    runs = [run_scenario(sc)]
    for v in sc.variants:
        runs.append(run_scenario(v.scenario, label=v.name, description=v.description))
    return runs


def verdict_table(runs: list[ScenarioRun]) -> str:
    lines = [f"{'run':<14} {'metric':<24} {'SLO':>10} {'mean':>12} {'+/-95%':>10}  verdict"]
    for r in runs:
        for v in r.verdicts:
            hw = "" if math.isnan(v.half_width) else f"{v.half_width:.3g}"
            why = f" ({v.reason})" if v.reason and math.isnan(v.mean) else ""
            lines.append(f"{r.name:<14} {v.metric:<24} {v.slo:>10.4g} {v.mean:>12.4g} "
                         f"{hw:>10}  {'pass' if v.passed else 'FAIL'}{why}")
    return "\n".join(lines)
