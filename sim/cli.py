"""Entry points the `streamscale` CLI calls: `estimate SCENARIO` and `sim SCENARIO`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sim import calibration
from sim.estimate import estimate, format_table
from sim.scenario import ScenarioError, load_scenario


def estimate_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="streamscale estimate",
                                 description="The seed's back-of-envelope for a scenario.")
    ap.add_argument("scenario", type=Path)
    args = ap.parse_args(argv)
    try:
        sc = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(estimate(sc)))
    return 0


def sim_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="streamscale sim",
                                 description="Run the capacity model; write reports/<name>/.")
    ap.add_argument("scenario", type=Path)
    ap.add_argument("--replications", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument("--duration-s", type=float, default=None)
    ap.add_argument("--no-variants", action="store_true", help="only the scenario as given")
    ap.add_argument("--fail-on-slo", action="store_true",
                    help="exit 1 when the scenario as given misses an SLO")
    ap.add_argument("--costs", default="reference", metavar="PATH|reference|assumed",
                    help="cost table from `streamscale calibrate` (default, reference: the "
                         "committed reports/calibration/costs.json, measured on the platform; "
                         "assumed: the schema's peer figures and assumptions)")
    args = ap.parse_args(argv)
    from sim.report import write_report
    from sim.runner import run_all, verdict_table, with_overrides

    try:
        sc = load_scenario(args.scenario)
        sc = with_overrides(sc, duration_s=args.duration_s, replications=args.replications,
                            seed=args.seed)
        table = calibration.load(calibration.REFERENCE_PATH if args.costs == "reference"
                                 else args.costs) if args.costs != "assumed" else None
        sc = calibration.apply_costs(sc, table) if table else sc
    except (ScenarioError, calibration.CalibrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.no_variants:
        import dataclasses

        sc = dataclasses.replace(sc, variants=())
    t0 = time.perf_counter()
    runs = run_all(sc)
    wall = time.perf_counter() - t0
    print(verdict_table(runs))
    path = write_report(runs, args.out)
    print("\n" + calibration.format_provenance(calibration.cost_provenance(sc, table)))
    events = sum(r.events for r in runs)
    print(f"\n{events:,} SimPy events in {wall:.1f} s; report: {path}")
    return 1 if args.fail_on_slo and not runs[0].passed else 0


def report_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="streamscale report",
        description="The model's prediction for a measured load run, beside the run: runs "
                    "the model on the scenario as the run deployed it (scale, timeline, "
                    "topology, calibrated costs) and states where they disagree.")
    ap.add_argument("scenario", help="scenario name (scenarios/NAME.toml) or path")
    ap.add_argument("--load", type=Path, default=None,
                    help="the load run's folder (default: reports/<scenario>/load)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write (default: reports/<scenario>/compare)")
    ap.add_argument("--costs", default="reference", metavar="PATH|reference|none",
                    help="cost table (default: reports/calibration/costs.json)")
    ap.add_argument("--fail-on-disagree", action="store_true",
                    help="exit 1 unless every figure was measured and agrees")
    args = ap.parse_args(argv)
    import json

    from loadtest.run import find_scenario
    from sim import compare

    try:
        sc = load_scenario(find_scenario(args.scenario))
        load_dir = args.load or Path("reports") / sc.name / "load"
        summary_path = load_dir / "summary.json"
        if not summary_path.is_file():
            raise compare.ReportError(f"no measured run at {summary_path}: run "
                                      f"`streamscale load {sc.name}` first")
        summary = json.loads(summary_path.read_text())
        if summary.get("scenario") != sc.name:
            raise compare.ReportError(f"{summary_path} is a run of {summary.get('scenario')!r},"
                                      f" not {sc.name!r}")
        table = None if args.costs == "none" else calibration.load(
            calibration.REFERENCE_PATH if args.costs == "reference" else args.costs)
        rows, out = compare.report(sc, summary, table,
                                   args.out or Path("reports") / sc.name / "compare")
    except (ScenarioError, calibration.CalibrationError, compare.ReportError,
            json.JSONDecodeError) as exc:
        print(f"streamscale report: {exc}", file=sys.stderr)
        return 2
    print((out / "comparison.txt").read_text())
    print(f"wrote {out}/comparison.json, comparison.txt, comparison.png")
    return 1 if args.fail_on_disagree and not compare.agreed(rows) else 0
