"""The hybrid run's summary: what was measured (and by what) beside what was modelled.

`build_summary` gathers the driver's, the players' and the pattern's figures and judges
the run (achieved vs intended origin requests/s, generator lag); `label_figures` gives
every headline figure its label, `measured` with what measured it or `modelled` with
where it came from; `summary_text` is summary.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from sim.scenario import Scenario

from .hybrid_pattern import OriginPattern

RATE_MARGIN = 0.05  # achieved origin req/s may fall this far below intended and still pass
GENERATOR_LAG_LIMIT_S = 0.05  # the driver's own event loop late by more: generator-bound


def build_summary(args: argparse.Namespace, scenario: Scenario, pattern: OriginPattern,
                  plan: dict[str, Any], driver: dict[str, Any], players: dict[str, Any],
                  *, platform_cores: float) -> dict[str, Any]:
    kinds = driver.get("kinds", {})
    media = ("playlist", "part", "classic playlist", "segment")
    achieved = sum(kinds.get(k, {}).get("answered", 0) for k in media) / driver["window_s"] \
        if "window_s" in driver else 0.0
    intended = plan["intended_req_per_s"]
    errors = sum(sum(kinds.get(k, {}).get("errors", {}).values()) for k in kinds)
    # what the stream offered: parts first seen in the window x loops on each rung x 2
    published = driver.get("published_parts", {})
    per_rung = {r: sum(1 for rr, m in plan["loops"] if rr == r and m == "ll")
                for r in published}
    offered_ll = sum(2 * published[r] * per_rung[r] for r in published) / driver["window_s"] \
        if "window_s" in driver else 0.0
    ok = achieved >= (1 - RATE_MARGIN) * intended
    lag, peer_lag = driver.get("lag_p99_s"), driver.get("peer_lag_p99_s")
    generator_late = lag is None or lag > GENERATOR_LAG_LIMIT_S
    contended = peer_lag is None or peer_lag > GENERATOR_LAG_LIMIT_S
    generator = (f"generator event-loop lag p99 {_fmt(lag, ' s')} "
                 f"(limit {GENERATOR_LAG_LIMIT_S:g} s; an idle peer process beside it "
                 f"{_fmt(peer_lag, ' s')}: the box "
                 f"{'is contended by other work' if contended else 'is not contended'}), "
                 f"{_fmt(driver.get('cpu_cores'))} cores")
    if ok:
        verdict = (f"achieved {achieved:,.0f} of {intended:,.0f} intended origin req/s "
                   f"(within {RATE_MARGIN:.0%}); {generator}")
        if generator_late:
            verdict += ": the generator was late, its latency figures are inflated by it"
    else:
        ll_intended = sum(2 / pattern.part_s for _, m in plan["loops"] if m == "ll")
        if "error" in driver:
            short = f"the driver failed ({driver['error']})"
        elif offered_ll < (1 - RATE_MARGIN) * ll_intended:
            short = "the stream published fewer parts than its part rate (transcode fell behind)"
        elif generator_late:
            short = (f"the generator was the bottleneck ({generator}); not a finding about "
                     f"the origin: lower --max-loops or free the machine")
        else:
            short = f"the origin answered slower than the pattern needs ({generator})"
        verdict = (f"NOT ACHIEVED: {achieved:,.0f} of {intended:,.0f} intended origin req/s "
                   f"(more than {RATE_MARGIN:.0%} short): {short}")
    return {
        "scenario": scenario.name, "mode": "hybrid", "duration_s": args.duration,
        "machine": "this box, shared with other jobs (2 cores); platform, driver and "
                   "players are separate processes on it",
        "provenance": {
            "pattern": "modelled: sim.delivery's cohorts at the scenario's full-scale peak "
                       "(loadtest.hybrid_pattern); steering and master rates are this "
                       "module's arithmetic, not in the model",
            "mapping": "the plan: full-scale loops capped by --max-loops",
            "origin, transcode, generator, platform_process_cpu_cores": "measured here by "
                       "the driver process (loadtest.hybrid_driver) and rusage",
            "platform_metrics": "measured: the platform's own /metrics",
            "players, players_requests": "measured: Locust HlsPlayer through the real edges",
            "modelled": "modelled: the SimPy model for the full scenario (source inside)",
            "figures": "every headline figure with its label and what it came from",
        },
        "pattern": {
            "viewers": pattern.viewers, "fetchers": pattern.fetchers,
            "fetcher_kind": "shield per CDN" if pattern.shield else "edge",
            "channels": pattern.channels, "part_s": pattern.part_s,
            "segment_s": pattern.segment_s, "classic_share": pattern.classic_share,
            "loops_full_scale": pattern.loops, "media_req_per_s_full_scale": pattern.media_rps,
            "model_origin_rps": pattern.model.origin_rps,
            "master_req_per_s_full_scale": pattern.master_rps,
            "steering_req_per_s_full_scale": pattern.steering_rps,
            "steering_parked_full_scale": pattern.steering_parked,
            "renditions": [dataclasses.asdict(r) for r in pattern.renditions],
        },
        "mapping": {
            "text": (f"each of the {pattern.loops:,.0f} expected active (fetcher, channel, "
                     f"rendition) cells at full scale is one fetch loop (blocking reload + "
                     f"part per {pattern.part_s:g} s part); {plan['loops_driven']} of them "
                     f"({plan['fraction_driven']:.2%}) are driven here as parallel loops on "
                     f"the ONE real stream's renditions (this box transcodes one ladder), "
                     + ("phase-spread over a part as channels publish at independent phases"
                        if args.spread else "all waking on the same part at once (a burst: "
                        "harsher than the fleet's channels at independent phases)") + "; "
                     f"steering: {plan['steering_pollers']} pollers of "
                     f"{plan['steering_pollers_at_fraction']:,.0f} at that fraction"),
            "loops_driven": plan["loops_driven"], "fraction_driven": plan["fraction_driven"],
            "spread": args.spread,
            "by_rendition": plan["mapping"], "steering_pollers": plan["steering_pollers"],
        },
        "origin": {
            "intended_req_per_s": intended, "achieved_req_per_s": achieved,
            "offered_ll_req_per_s": offered_ll, "rate_achieved": ok,
            "rate_margin": RATE_MARGIN, "generator_late": generator_late,
            "verdict": verdict, "errors": errors,
            "by_kind": kinds,
        },
        "transcode": {
            "ready_after_end_p50_s": driver.get("ready_after_end_p50_s"),
            "ready_after_end_p95_s": driver.get("ready_after_end_p95_s"),
            "samples": driver.get("ready_after_end_samples", 0),
            "what": "when the driver first saw a part listed at the origin, minus its "
                    "media's end (PROGRAM-DATE-TIME, stamped from the ingest's wall clock, + "
                    "duration): transcode + packaging lag behind ingest, plus the origin's "
                    "answer and the generator's lag under the load (an upper bound); the "
                    "platform's own transcode lag is platform_metrics' transcode_lag_p95_s",
        },
        "generator": {
            "client": args.client,
            "cpu_cores": driver.get("cpu_cores"), "lag_p99_s": driver.get("lag_p99_s"),
            "idle_peer_lag_p99_s": driver.get("peer_lag_p99_s"),
            "lag_max_s": driver.get("lag_max_s"), "error": driver.get("error"),
        },
        "platform_process_cpu_cores": platform_cores,
        "players": {k: v for k, v in players.items() if k != "by_name"},
        "players_requests": players.get("by_name", {}),
    }


def label_figures(s: dict[str, Any], pattern: OriginPattern,
                  modelled: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every headline figure with `measured` (and by what) or `modelled` (and from where)."""
    src = modelled.get("source", "")
    kinds = s["origin"]["by_kind"]
    players = s["players"]

    def m(value: Any, by: str) -> dict[str, Any]:
        return {"value": value, "label": "measured", "by": by}

    def mod(value: Any, by: str = src) -> dict[str, Any]:
        return {"value": value, "label": "modelled", "by": by}

    drv = "loadtest.hybrid_driver (emulated edge fetch loops -> real origin)"
    out: dict[str, dict[str, Any]] = {
        "origin_req_per_s_intended": mod(s["origin"]["intended_req_per_s"],
                                         "sim.delivery cohorts at full scale x fraction driven"),
        "origin_req_per_s_achieved": m(s["origin"]["achieved_req_per_s"], drv),
        "origin_req_per_s_full_scale": mod(pattern.media_rps, "sim.delivery (Loads.origin_rps "
                                           "+ classic share) at the scenario's peak"),
        "origin_errors": m(s["origin"]["errors"], drv),
        "steering_req_per_s_full_scale": mod(pattern.steering_rps,
                                             "hybrid arithmetic (not in the model)"),
        "generator_cpu_cores": m(s["generator"]["cpu_cores"], "the driver's own rusage"),
        "platform_process_cpu_cores": m(s["platform_process_cpu_cores"],
                                        "the platform process's rusage (origin, edges, "
                                        "transcode, API)"),
        "part_seen_after_media_end_p95_s": m(
            s["transcode"]["ready_after_end_p95_s"],
            "the driver's playlists: first sighting - (PDT + duration); transcode, packaging, "
            "the origin's answer and the generator's own lag"),
    }
    for kind, k in kinds.items():
        if kind == "init":  # once per loop, at its start (before the window)
            continue
        out[f"origin_{kind.replace(' ', '_')}_req_per_s"] = m(k["req_per_s"], drv)
        if kind == "steering":  # held up to its TTL by design: no latency to report
            continue
        out[f"origin_{kind.replace(' ', '_')}_p50_s"] = m(k["from_intended_p50_s"], drv)
        out[f"origin_{kind.replace(' ', '_')}_p99_s"] = m(k["from_intended_p99_s"], drv)
    for key in ("startup_p95_s", "live_latency_p95_s", "rebuffer_ratio", "error_rate"):
        out[f"sampled_players_{key}"] = m(players.get(key),
                                          "Locust HlsPlayer through the real edges a1/b1")
    for key in ("startup_p95_s", "live_latency_p95_s", "rebuffer_ratio", "peak_egress_gbps",
                "peak_origin_rps", "mean_viewers", "viewer_error_rate"):
        out[f"fleet_{key}"] = mod(modelled.get(key))
    pm = s.get("platform_metrics", {}).get("figures") or {}
    scraped = ("the platform's own /metrics (loadtest.metrics_window) over "
               f"{pm.get('locust_window_s')} s incl. the players' start and stop: the driver's "
               "requests plus the edges' fetches for the players")
    for key in ("origin_requests_per_s", "transcode_lag_p95_s", "edge_hit_ratio"):
        if key in pm:
            out[f"platform_{key}"] = m(pm[key], scraped)
    out["fleet_edge_hit_ratio"] = mod(pattern.model.hit_ratio, "sim.delivery at the peak")
    out["fleet_egress_gbps"] = mod(pattern.model.egress_gbps, "sim.delivery at the peak")
    return out


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.3g}{unit}" if abs(v) < 100 else f"{v:,.0f}{unit}"
    return f"{v}{unit}"


def summary_text(s: dict[str, Any]) -> str:
    o, f = s["origin"], s["figures"]
    lines = [f"streamscale load {s['scenario']} --hybrid, {s['duration_s']:g} s ({s['machine']})",
             s["mapping"]["text"], "", f"origin: {o['verdict']}; errors {o['errors']}"]
    for kind, k in o["by_kind"].items():
        if kind == "init":
            lines.append(f"  init              {k['answered_whole_run']} (once per loop)")
            continue
        lines.append(f"  {kind:<17} {k['req_per_s']:8.1f} req/s  from intended p50 "
                     f"{_fmt(k['from_intended_p50_s'], ' s')} p99 "
                     f"{_fmt(k['from_intended_p99_s'], ' s')}  service p99 "
                     f"{_fmt(k['service_p99_s'], ' s')}  errors {k['errors'] or 0}")
    lines.append("")
    for name, fig in f.items():
        lines.append(f"{name:<40} {_fmt(fig['value']):>14}  {fig['label']:<9} {fig['by']}")
    return "\n".join(lines)
