"""reports/<scenario>/: result.json, PNG plots and an index.html readable without running.

The JSON holds no wall-clock figures, so the same seed writes the same bytes (tested).
Each plot overlays the scenario as given with its fix variants, draws the SLO as a dashed
line and shades where the design as given breaks it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sim.calibration import cost_provenance
from sim.estimate import estimate
from sim.runner import SLO_COUNTS, SLO_METRICS, ScenarioRun
from sim.scenario import Scenario

PANELS = {
    "load.png": ["viewers", "egress_gbps", "origin_rps", "cache_hit_ratio",
                 "arrivals_per_s", "transcode_cores"],
    "slos.png": ["startup_p95_s", "rebuffer_ratio", "live_latency_p95_s", "chat_p99_s",
                 "viewer_error_rate", "chat_loss_rate", "chat_refusal_rate",
                 "moderation_wait_p95_s"],
    "capacity.png": ["edge_util_max", "origin_util", "api_util", "db_util_max",
                     "hot_key_util", "chat_util_max", "transcode_util", "refused_streams"],
}
SERIES_SLO = {s_key: slo_field for slo_field, s_key in SLO_METRICS.values()}
LOG_PANELS = {"startup_p95_s", "live_latency_p95_s", "chat_p99_s", "moderation_wait_p95_s"}


def _num(x: float) -> float | None:
    if not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def scenario_digest(sc: Scenario) -> str:
    """SHA-256 of everything the run read from the scenario (fix variants included, the
    file's path not): a committed report whose digest differs from its file's is stale."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "source"}
        if isinstance(x, list | tuple):
            return [strip(v) for v in x]
        return x

    text = json.dumps(strip(dataclasses.asdict(sc)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def to_json(runs: list[ScenarioRun]) -> dict[str, Any]:
    sc = runs[0].scenario
    return {
        "scenario": sc.name, "description": sc.description, "source": sc.source,
        "scenario_sha256": scenario_digest(sc),
        "seed": sc.run.seed, "replications": sc.run.replications,
        "duration_s": sc.run.duration_s, "step_s": sc.run.step_s,
        "modelled": "all figures are modelled (SimPy + fluid cohorts); none measured",
        "costs": cost_provenance(sc),  # per cost parameter: measured here (when, where) or not
        "estimate": [{"quantity": r.quantity, "value": _num(r.value), "unit": r.unit,
                      "seed": r.seed, "note": r.note} for r in estimate(sc)],
        "runs": [{
            "name": r.name, "description": r.description, "passed": r.passed,
            "simpy_events": r.events,
            "verdicts": [{"metric": v.metric, "counts": SLO_COUNTS[v.metric],
                          "slo": v.slo, "mean": _num(v.mean),
                          "ci95_half_width": _num(v.half_width), "passed": v.passed,
                          "failing_from_s": v.failing_from_s, "reason": v.reason}
                         for v in r.verdicts],
            "summary": {k: {"mean": _num(m), "ci95_half_width": _num(h)}
                        for k, (m, h) in r.summary.items()},
            "series": {"t_s": [_num(t) for t in r.t_s],
                       **{k: [_num(x) for x in v] for k, v in sorted(r.series.items())}},
        } for r in runs],
    }


def _plot(runs: list[ScenarioRun], names: list[str], path: Path) -> None:
    cols = 2
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.0 * rows), squeeze=False)
    slo = runs[0].scenario.slo
    for ax, key in zip(axes.flat, names, strict=False):
        for j, r in enumerate(runs):
            y = r.series[key]
            ax.plot(r.t_s / 60, y, label=r.name, lw=1.6 if j == 0 else 1.2,
                    color="C3" if j == 0 else f"C{j - 1}")
        if key in SERIES_SLO and key != "refused_streams":
            limit = float(getattr(slo, SERIES_SLO[key]))
            ax.axhline(limit, ls="--", color="k", lw=0.8, label="SLO")
            base = runs[0]
            over = base.series[key] > limit
            for t, bad in zip(base.t_s, over, strict=True):
                if bad:
                    ax.axvspan(t / 60, (t + base.scenario.run.window_s) / 60, color="C3",
                               alpha=0.08, lw=0)
        if key in LOG_PANELS:
            ax.set_yscale("log")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("minutes", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{runs[0].scenario.name}: {path.stem}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


def write_report(runs: list[ScenarioRun], out_dir: Path) -> Path:
    sc = runs[0].scenario
    d = out_dir / sc.name
    d.mkdir(parents=True, exist_ok=True)
    data = to_json(runs)
    (d / "result.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    for name, panels in PANELS.items():
        _plot(runs, panels, d / name)
    (d / "index.html").write_text(_html(data))
    return d / "index.html"


def _html(data: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(data['scenario'])}</title>",
             "<style>body{font:14px sans-serif;max-width:1100px;margin:2em auto}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
             ".FAIL{color:#b00;font-weight:bold}.pass{color:#070}</style>",
             f"<h1>{e(data['scenario'])}</h1><p>{e(data['description'])}</p>",
             f"<p>{e(data['modelled'])}. Seed {data['seed']}, {data['replications']} "
             f"replications of {data['duration_s']:g} s, step {data['step_s']:g} s; "
             "mean over replications, 95% Student-t half-width.</p><h2>SLO verdicts</h2>"]
    for run in data["runs"]:
        parts.append(f"<h3>{e(run['name'])}: {'pass' if run['passed'] else 'FAIL'}</h3>"
                     f"<p>{e(run['description'])}</p><table><tr><th>metric</th><th>SLO</th>"
                     "<th>mean</th><th>&plusmn;95%</th><th>verdict</th><th>first over</th>"
                     "<th>what it counts</th></tr>")
        for v in run["verdicts"]:
            verdict = "pass" if v["passed"] else "FAIL"
            first = "" if v["failing_from_s"] is None else f"{v['failing_from_s'] / 60:g} min"
            why = f" ({e(v['reason'])})" if v["reason"] and v["mean"] is None else ""
            parts.append(f"<tr><td>{e(v['metric'])}</td><td>{v['slo']:g}</td>"
                         f"<td>{_fmt(v['mean'])}</td><td>{_fmt(v['ci95_half_width'])}</td>"
                         f"<td class='{verdict}'>{verdict}{why}</td><td>{first}</td>"
                         f"<td>{e(v['counts'])}</td></tr>")
        parts.append("</table>" + _counts(run["summary"]))
    for png in PANELS:
        parts.append(f"<h2>{e(png[:-4])}</h2><img src='{png}' width='100%'>")
    parts.append("<h2>Back-of-envelope (streamscale estimate)</h2><table>"
                 "<tr><th>quantity</th><th>value</th><th>unit</th><th>seed</th><th>note</th></tr>")
    for r in data["estimate"]:
        parts.append(f"<tr><td>{e(r['quantity'])}</td><td>{_fmt(r['value'])}</td>"
                     f"<td>{e(r['unit'])}</td><td>{e(r['seed'])}</td><td>{e(r['note'])}</td></tr>")
    parts.append("</table><h2>Cost parameters</h2><p>Measured here: by `streamscale "
                 "calibrate` on the platform itself; otherwise peer figures or assumptions."
                 "</p><table><tr><th>parameter</th><th>value</th><th>unit</th><th>source</th>"
                 "</tr>")
    for name, c in data.get("costs", {}).items():
        where = c["source"] + (f" {c['measured_at']} ({c['machine']})"
                               if c["source"] == "measured here" else "")
        parts.append(f"<tr><td>{e(name)}</td><td>{c['value']:g}</td><td>{e(c['unit'])}</td>"
                     f"<td>{e(where)}</td></tr>")
    parts.append("</table><p>Data: <a href='result.json'>result.json</a></p>")
    return "\n".join(parts) + "\n"


def _counts(summary: dict[str, Any]) -> str:
    """The numerators and denominators behind the two error SLOs (means per replication)."""

    def n(key: str) -> str:
        x = summary.get(key, {}).get("mean")
        return "n/a" if x is None else f"{x:,.0f}"

    return (f"<p>Viewer sessions {n('sessions')}: viewers refused at join {n('viewers_refused')}, "
            f"abandoned on a dead path {n('viewers_abandoned')}. Chat messages accepted "
            f"{n('chat_sent')}: dropped by gateway overflow {n('chat_lost_overflow')}, lost "
            f"with the DB down (sync persist) {n('chat_lost_db_down')}; refused by slow mode "
            f"(not lost; chat_refusal_rate) {n('chat_rate_limited')}; sampled out by busy "
            f"rooms (skipped, not lost) {n('chat_skipped')}.</p>")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
