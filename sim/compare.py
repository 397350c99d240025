"""The model beside a measured run: what `streamscale report SCENARIO` does.

A load run (`streamscale load`) plays a scenario scaled down on one box: `scale` x the
viewers, the timeline compressed `time_scale` times, one stream published with ffmpeg
through the real ladder, players on the real edges. `deployment()` turns that into a
scenario the model can run: the same scaled workload on the topology that served it
(one origin, the configured CDNs and edges, one transcoding box), with

- costs from the calibration table (`streamscale calibrate`: measured on this machine);
- the platform's own settings (part and segment targets, no shield: the edges pull from
  the origin; content steering puts every player on the first CDN up, the others stand by);
- the deployment probe's figures (loadtest.deployment): the ladder, the hold-back the
  playlists advertise, how long after its media ends a part is published, how far apart
  each rendition's independent parts are;
- the load test's players as they are: on loopback (0.1 ms round trip, a 10 Gbit/s
  link), no decoder (startup is "first part loaded"), one API request on the way in (the
  stream's page data, one database read), the run's share of them in the chat, posting at the
  scenario's rate x `time_scale`.

None of the compared figures goes in. `compare()` then puts each prediction beside its
measurement and calls them in agreement when |measured - predicted| <= max(absolute,
relative x predicted): the tolerances below, stated in every report. Disagreement is
reported, never hidden; a figure that was not measured is said to be missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim import calibration
from sim.runner import ScenarioRun, run_scenario
from sim.scenario import (
    Api,
    Cdn,
    Chat,
    Database,
    Delivery,
    Origin,
    Rendition,
    Run,
    Scenario,
    Transcode,
    Workload,
)

LOOPBACK_RTT_MS = 0.1
LOOPBACK_MBPS = 10_000.0
BOX_CORES = 2.0  # this machine; the ladder shares it with everything else
REPLICATIONS = 5
# origin request kinds the model counts (a blocking playlist reload and a part per part,
# segments, playlists, init); steering manifests and masters are not in the model
MODELLED_ORIGIN_KINDS = ("blocking", "playlist", "part", "segment", "init")


@dataclass(frozen=True)
class Tolerance:
    metric: str
    label: str
    absolute: float
    relative: float
    why: str

    def allowed(self, predicted: float) -> float:
        return max(self.absolute, self.relative * abs(predicted))


TOLERANCES: tuple[Tolerance, ...] = (
    Tolerance("startup_p95_s", "startup p95 (s)", 0.3, 0.5,
              "the model charges a queue's wait only once a station is busy; at this "
              "scale the real player's first fetches also wait on one shared Python "
              "process (tens of ms) the model does not see"),
    Tolerance("live_latency_p95_s", "live latency p95 (s)", 0.5, 0.15,
              "one GOP of join offset and the part's age spread the p95; the model "
              "draws both, from the probe's measured intervals"),
    Tolerance("origin_media_requests_per_s", "origin media requests/s", 3.0, 0.35,
              "few viewers per edge: whether a rendition's cell is active is the "
              "model's 1 - exp(-n), the run's is which renditions players chose"),
    Tolerance("chat_delivery_p99_s", "chat delivery p99 (s)", 0.25, 0.5,
              "a quiet room sends at once, so the model's p99 is milliseconds; the run's "
              "p99 over ~100 messages is nearly their maximum and carries the Locust "
              "reader's own lag (0.06 s on a quiet box, 0.4 s with other work on it)"),
    Tolerance("transcode_lag_p95_s", "transcode lag p95 (s)", 0.5, 0.5,
              "one ladder on two cores: both should be near zero; the run's lag moves "
              "with the other processes on the box"),
)


class ReportError(ValueError):
    """The measured run cannot be compared (missing fields, wrong scenario)."""


def _need(summary: Mapping[str, Any], key: str) -> Any:
    if summary.get(key) is None:
        raise ReportError(f"the load summary has no {key!r}: rerun `streamscale load` "
                          f"with this version")
    return summary[key]


def deployment(sc: Scenario, summary: Mapping[str, Any],
               table: calibration.CostTable | None) -> Scenario:
    """The scenario as the load run deployed it on this box (see the module docstring)."""
    dep: Mapping[str, Any] = _need(summary, "deployment")
    if dep.get("errors"):
        raise ReportError(f"the deployment probe failed: {dep['errors']}")
    duration = float(_need(summary, "duration_s"))
    time_scale = float(_need(summary, "time_scale"))
    peak = max(1, round(float(_need(summary, "peak_viewers_planned"))))
    rungs = list(dep.get("renditions") or [])
    if not rungs:
        raise ReportError("the deployment probe saw no renditions")
    # which renditions the players watched, by viewer-seconds (the API's counts sampled
    # about once a second); older summaries only have each rendition's peak count
    watched = {str(k): float(v) for k, v in (summary.get("viewer_seconds_by_rendition")
                                             or summary.get("viewers_by_rendition_peak")
                                             or {}).items() if float(v) > 0}
    total = sum(watched.values())
    by_name = {r.name: r for r in sc.workload.renditions}
    renditions = tuple(
        Rendition(name=str(r["name"]), bitrate_kbps=float(r["bandwidth_bps"]) / 1000,
                  share=(watched.get(str(r["name"]), 0.0) / total if total
                         else 1.0 / len(rungs)),
                  # the source rung is passed through; the encoded ones cost what the
                  # scenario's rung of the same name costs (not calibrated: see report)
                  transcode_cores=(by_name[str(r["name"])].transcode_cores
                                   if str(r["name"]) in by_name else 0.0),
                  independent_s=float(r.get("independent_s") or 0.0))
        for r in rungs)
    if total and sum(x.share for x in renditions) <= 0:
        raise ReportError(f"viewers watched renditions the probe did not see: {watched}")
    part_s = float(_need(dep, "part_target_s"))
    ready = float(_need(dep, "ready_after_end_s_mean"))
    # chat sessions follow the schedule (a share of the viewers); older runs had fixed users
    chat_fraction = (float(summary["chat_join_fraction"]) if "chat_join_fraction" in summary
                     else min(1.0, int(summary.get("chat_users") or 0) / peak))
    w = sc.workload
    workload = Workload(
        peak_viewers=peak,
        shape=tuple((t / time_scale, f) for t, f in w.shape),
        channels=1, streams=1, stream_mean_s=10 * duration, zipf_s=w.zipf_s,
        session_mean_s=float(_need(summary, "session_mean_s")),
        session_sigma=0.83,  # lognormal with an exponential's coefficient of variation (1)
        renditions=renditions,
        chat_msgs_per_viewer_s=w.chat_msgs_per_viewer_s * time_scale,
        chat_join_fraction=chat_fraction,
        # a player asks the API for the stream once (GET /api/streams/{id}), then the edge
        flag_fraction=0.0, join_api_requests=1, join_db_reads=1,
        probe_viewers=max(peak, 50),
    )
    costs = calibration.apply_costs(sc, table).costs if table else sc.costs
    edges = _cdns(summary)
    cdns = tuple(Cdn(name=name, edges=n, weight=share,
                     edge_egress_gbps=costs.copy_gbytes_per_s * 8,
                     edge_requests_per_s=1e6 / costs.small_request_us)
                 for name, n, share in edges)
    delivery = Delivery(
        segment_s=float(dep.get("segment_target_s") or sc.delivery.segment_s),
        part_s=part_s,
        # where the load player starts: the first part start at least PART-HOLD-BACK
        # behind the live edge (the probe applies the player's join rule to its snapshots)
        holdback_s=float(dep.get("join_behind_s") or dep.get("part_hold_back_s")
                         or 3 * part_s),
        # a viewer at the hold-back sees the newest part's age: its publication delay
        # after its media ended, plus on average half a part since it was published
        pipeline_s=ready + part_s / 2,
        shield=False, coalescing=True, failover="cdn", failover_s=2.0,
        edge_rtt_ms=LOOPBACK_RTT_MS, access_mbps=LOOPBACK_MBPS, decode_s=0.0,
        origin_fetch_s=0.002,
    )
    return Scenario(
        name=f"{sc.name} as deployed",
        description=f"{sc.name} at scale {summary.get('scale')} on this box, as the load "
                    f"run deployed it",
        source=sc.source,
        run=Run(duration_s=duration, step_s=1.0, seed=sc.run.seed,
                replications=REPLICATIONS, window_s=1.0),
        workload=workload, cdns=cdns, delivery=delivery,
        origin=Origin(instances=1, cores_per_instance=1.0, egress_gbps=costs.copy_gbytes_per_s * 8),
        transcode=Transcode(cores=BOX_CORES, max_lag_s=sc.transcode.max_lag_s),
        api=Api(cores=1.0, instances=1),
        chat=Chat(gateways=1, cores_per_gateway=1.0, placement="pinned", persist="sync",
                  moderators=1, batch_interval_s=0.05, viewer_cap_per_s=60.0),
        database=Database(shards=1, viewer_count="redis"),
        costs=costs, slo=sc.slo,
    )


def _cdns(summary: Mapping[str, Any]) -> list[tuple[str, int, float]]:
    """(cdn, edges, share of viewers): steering sends every player to the first CDN up."""
    listed = summary.get("cdns") or [{"name": "a", "edges": 1}, {"name": "b", "edges": 1}]
    return [(str(c["name"]), int(c["edges"]), 1.0 if i == 0 else 0.0)
            for i, c in enumerate(listed)]


def predicted(run: ScenarioRun) -> dict[str, float]:
    """The compared figures from the model's run (means over replications)."""
    s = run.summary
    lag = np.concatenate([r.series["lag_s"] for r in run.replications])
    origin = np.concatenate([r.series["origin_rps"] for r in run.replications])
    return {
        "startup_p95_s": s["startup_p95_s"][0],
        "live_latency_p95_s": s["live_latency_p95_s"][0],
        "origin_media_requests_per_s": float(origin.mean()) if origin.size else math.nan,
        "chat_delivery_p99_s": s["chat_delivery_p99_s"][0],
        "transcode_lag_p95_s": float(np.quantile(lag, 0.95)) if lag.size else math.nan,
    }


def measured(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The same figures from the load summary (None: not measured, and why is in it)."""
    dep = summary.get("deployment") or {}
    by_kind = summary.get("origin_requests_by_kind_per_s")
    media: float | None = None
    if isinstance(by_kind, Mapping):
        media = sum(float(v) for k, v in by_kind.items()
                    if any(k.startswith(m) for m in MODELLED_ORIGIN_KINDS))
        duration = float(summary.get("locust_window_s") or summary.get("duration_s") or 0)
        if duration > 0:  # the deployment probe's own blocking reloads are not the players'
            media = max(0.0, media - float(dep.get("probe_requests") or 0) / duration)

    def num(key: str) -> float | None:
        v = summary.get(key)
        return None if v is None else float(v)

    return {
        "startup_p95_s": num("startup_p95_s"),
        "live_latency_p95_s": num("live_latency_p95_s"),
        "origin_media_requests_per_s": media,
        "chat_delivery_p99_s": num("chat_delivery_p99_s"),
        "transcode_lag_p95_s": num("transcode_lag_p95_s"),
    }


@dataclass(frozen=True)
class Row:
    metric: str
    label: str
    measured: float | None
    predicted: float
    allowed: float
    agree: bool | None  # None: not measured
    why: str

    @property
    def difference(self) -> float | None:
        return None if self.measured is None else self.measured - self.predicted


def compare(pred: Mapping[str, float], meas: Mapping[str, float | None],
            tolerances: tuple[Tolerance, ...] = TOLERANCES) -> list[Row]:
    rows = []
    for t in tolerances:
        p, m = pred[t.metric], meas.get(t.metric)
        allowed = t.allowed(p) if math.isfinite(p) else math.nan
        agree = None if m is None else bool(math.isfinite(p) and abs(m - p) <= allowed)
        rows.append(Row(t.metric, t.label, m, p, allowed, agree, t.why))
    return rows


def agreed(rows: list[Row]) -> bool:
    """Every compared figure measured and within its tolerance."""
    return all(r.agree is True for r in rows)


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'figure':<26} {'measured':>10} {'model':>10} {'diff':>9} {'allowed':>9}  "
             "verdict"]
    for r in rows:
        m = "-" if r.measured is None else f"{r.measured:.3g}"
        d = "-" if r.difference is None else f"{r.difference:+.3g}"
        verdict = ("not measured" if r.agree is None else "agree" if r.agree
                   else "DISAGREE")
        lines.append(f"{r.label:<26} {m:>10} {r.predicted:>10.3g} {d:>9} "
                     f"{r.allowed:>9.3g}  {verdict}")
    return "\n".join(lines)


def report(sc: Scenario, summary: Mapping[str, Any], table: calibration.CostTable | None,
           out: Path) -> tuple[list[Row], Path]:
    """Run the model on the deployment, compare, write comparison.{json,txt,png}."""
    dep_sc = deployment(sc, summary, table)
    with warnings.catch_warnings():  # 1 s windows: some hold no join (NaN, not an error)
        warnings.simplefilter("ignore", RuntimeWarning)
        run = run_scenario(dep_sc, label="model")
    rows = compare(predicted(run), measured(summary))
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "scenario": sc.name,
        "scale": summary.get("scale"),
        "time_scale": summary.get("time_scale"),
        "agree": agreed(rows),
        "rule": "agree when |measured - model| <= max(absolute, relative x model)",  # text
        "rows": [{**dataclasses.asdict(r), "difference": r.difference} for r in rows],
        "tolerances": [dataclasses.asdict(t) for t in TOLERANCES],
        "measured_from": "reports/<scenario>/load/summary.json: measured on this machine",
        "machine_load_1min": summary.get("machine_load_1min"),
        "model_inputs": {
            "deployment": _plain(dataclasses.asdict(dep_sc.delivery)),
            "workload": {k: v for k, v in _plain(dataclasses.asdict(dep_sc.workload)).items()
                         if k in ("peak_viewers", "session_mean_s", "renditions",
                                  "chat_msgs_per_viewer_s", "chat_join_fraction")},
            "cdns": _plain([dataclasses.asdict(c) for c in dep_sc.cdns]),
            "costs": calibration.cost_provenance(dep_sc, table),
            "replications": dep_sc.run.replications,
        },
        "not_modelled": "steering manifest and master requests at the origin; the API "
                        "and chat users' own requests; the load generator's lag",
    }
    (out / "comparison.json").write_text(json.dumps(_plain(data), indent=1) + "\n")
    rule = "agree when |measured - model| <= max(absolute, relative x model)"
    verdict = ("the model and the run agree" if agreed(rows)
               else "they DISAGREE (or a figure is missing): see above")
    load = summary.get("machine_load_1min")
    busy = (f"machine load {load:.1f} (1 min) on {summary.get('machine_cores')} cores at the "
            "end of the run: other work inflates the CPU-bound figures (startup, chat p99, "
            "lag), which the model does not see\n\n" if load is not None else "")
    text = (f"{sc.name}: the model on the deployment beside the measured run "
            f"(scale {summary.get('scale')}, timeline /{summary.get('time_scale')})\n\n"
            + busy
            + format_rows(rows) + "\n\n" + rule + "\n"
            + "\n".join(f"- {t.label}: +/- max({t.absolute:g}, {t.relative:.0%}): {t.why}"
                        for t in TOLERANCES)
            + f"\n\nverdict: {verdict}\n")
    (out / "comparison.txt").write_text(text)
    _plot(rows, out / "comparison.png", sc.name)
    return rows, out


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.floating):
        return _plain(float(x))
    return x


def _plot(rows: list[Row], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(3 * len(rows), 3.2))
    for ax, r in zip(np.atleast_1d(axes), rows, strict=True):
        ax.bar([0], [r.predicted], color="#9ab", label="model")
        if math.isfinite(r.allowed):
            ax.errorbar([0], [r.predicted], yerr=[[min(r.allowed, r.predicted)], [r.allowed]],
                        color="#345", capsize=8, label="tolerance")
        if r.measured is not None:
            ax.scatter([0], [r.measured], color="#c33" if not r.agree else "#292",
                       zorder=3, s=60, label="measured")
        ax.set_xticks([])
        ax.set_title(r.label, fontsize=8)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"{name}: model (bar, tolerance) vs measured (dot)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
