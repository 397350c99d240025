"""Benchmark: the capacity model at full scale (1M viewers, one simulated hour).

Prints wall time, SimPy events per second, cohort cell-updates per second and peak RSS.
Target (issue 5): <= 60 s and < 2 GB for `streamscale sim scenarios/baseline.toml`.
Usage: .venv/bin/python bench/sim.py [SCENARIO] [--replications N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.runner import run_all, with_overrides
from sim.scenario import load_scenario


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default="scenarios/baseline.toml")
    ap.add_argument("--replications", type=int, default=None)
    args = ap.parse_args()
    sc = with_overrides(load_scenario(args.scenario), replications=args.replications)
    t0 = time.perf_counter()
    runs = run_all(sc)
    wall = time.perf_counter() - t0
    events = sum(r.events for r in runs)
    reps = sum(len(r.replications) for r in runs)
    steps = sc.run.duration_s / sc.run.step_s
    cells = sc.workload.channels * len(sc.workload.renditions) * (
        sum(c.edges for c in sc.cdns) + 1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scenario        {sc.name}: {sc.workload.peak_viewers:,} viewers, "
          f"{sc.run.duration_s:g} s simulated, {reps} replication(s)")
    print(f"wall            {wall:.1f} s ({wall / reps:.1f} s per replication; target <= 60 s)")
    print(f"simpy events    {events:,} ({events / wall:,.0f} events/s)")
    print(f"cohort updates  {cells * steps * reps / wall:,.0f} cell-steps/s "
          f"({cells:,} cells x {steps:g} steps)")
    print(f"peak memory     {peak_mb:,.0f} MB RSS (target < 2048 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
