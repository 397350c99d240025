"""`streamscale load SCENARIO --hybrid`: the 1M-viewer run, honestly split.

One box cannot hold a million HTTP clients (DESIGN.md). The hybrid run measures what it can
at full scale and takes the rest from the model, and says which is which:

- measured: the origin under the request pattern the scenario's whole edge fleet sends it
  after coalescing (loadtest.hybrid_pattern, from sim.delivery's own cohorts), driven by
  emulated edge fetch loops in their own process (loadtest.hybrid_driver) against the real
  origin; the real ffmpeg publish and transcode ladder feeding it; a handful of real
  sampled players (the Locust HlsPlayer, as `streamscale load` runs it) watching through
  the real edges a1/b1 at the same time.
- modelled: everything that needs a million viewers (edge egress, the fleet's startup
  and latency percentiles, rebuffering at scale): the SimPy model's figures for the same
  scenario, from reports/<scenario>/result.json when its digest matches the scenario file,
  else a short model run made here (one replication, `--model-duration-s`).

Mapping, stated in the summary: each expected active (shield, channel, rendition) cell of
the full-scale fleet is one fetch loop; this box transcodes ONE stream (the load run's
three-rung ladder), so all cells are emulated as parallel loops on that stream's renditions
(the scenario's renditions mapped onto the real rungs by rank). The loop count is the
scenario's, capped by `--max-loops` (what this box can drive); the fraction driven is
printed. All loops of a rung wake on the same part at once: at full scale 1,500 channels
publish at independent phases, so this burst is harsher than the fleet's (latency figures
are an upper bound). The platform runs the scenario's part and segment durations.

Pass/fail: the run is valid only if the achieved origin request rate is within
`hybrid_summary.RATE_MARGIN` of the intended one (the generator must not be the
bottleneck); otherwise it exits 3 and the summary says so, and whether the stream, the
generator or the origin fell short.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import trio

from sim.scenario import Scenario

from .arrivals import ArrivalPlan
from .hybrid_driver import DriverSpec
from .hybrid_pattern import OriginPattern, allocate, origin_pattern, peak_fraction, rung_for
from .hybrid_summary import build_summary, label_figures, summary_text
from .publishing import caster_stream, publish, wait_live
from .settings import LoadSettings
from .summary import slo_verdicts, summarise

log = logging.getLogger(__name__)
NOT_ACHIEVED_EXIT = 3  # the intended origin rate was not reached (1 is a crash, 2 bad input)
WARMUP_S = 4.0  # driver requests intended before this are not counted (loops starting)
LIVE_WAIT_S = 30.0
MAX_LOOPS_CAP = 2000  # connections this run may open to the origin, whatever is asked
REPO = Path(__file__).resolve().parents[1]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hybrid (--hybrid: the full-scale origin pattern + sampled "
                             "players; the rest modelled)")
    g.add_argument("--hybrid", action="store_true",
                   help="drive the origin with the full-scale edge fleet's pattern")
    g.add_argument("--max-loops", type=int, default=300,
                   help=f"emulated edge fetch loops (connections), at most {MAX_LOOPS_CAP}")
    g.add_argument("--spread", action="store_true",
                   help="phase-spread the loops over a part, as channels publish at "
                        "independent phases (default: all wake on the same part, a burst)")
    g.add_argument("--client", choices=("lean", "h11"), default="lean",
                   help="the driver's HTTP client: lean (loadtest.hybrid_http) or h11 (the "
                        "edge's own upstream client, to compare)")
    g.add_argument("--players", type=int, default=6,
                   help="sampled real players (Locust) through the real edges")
    g.add_argument("--max-steering", type=int, default=20,
                   help="players' steering reloads emulated at the origin, at most this many")
    g.add_argument("--model-duration-s", type=float, default=600.0,
                   help="model run length when no matching reports/<scenario>/result.json")


def main(args: argparse.Namespace, path: Path, scenario: Scenario) -> int:
    from .run import LADDER

    try:
        if args.target:
            raise ValueError("--hybrid starts its own platform (no --target): it needs the "
                             "origin's address and the stream it publishes")
        if not 1 <= args.max_loops <= MAX_LOOPS_CAP:
            raise ValueError(f"--max-loops must be in [1, {MAX_LOOPS_CAP}], not {args.max_loops}")
        if args.players < 0 or args.max_steering < 0:
            raise ValueError("--players and --max-steering must not be negative")
        if args.duration < 2 * WARMUP_S:
            raise ValueError(f"--duration must be at least {2 * WARMUP_S:g} s for --hybrid")
        pattern = origin_pattern(scenario, classic_share=args.classic_share)
    except ValueError as exc:
        print(f"streamscale load: {exc}", file=sys.stderr)
        return 2
    pattern.check_against_model()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out: Path = args.out or Path("reports") / scenario.name / "hybrid"
    out.mkdir(parents=True, exist_ok=True)
    plan = drive_plan(pattern, LADDER.split(","), max_loops=args.max_loops,
                      max_steering=args.max_steering)
    print(f"streamscale load --hybrid: {pattern.loops:,.0f} fetch loops at full scale "
          f"({pattern.media_rps:,.0f} origin req/s); driving {plan['loops_driven']} "
          f"({plan['fraction_driven']:.2%}), {plan['intended_req_per_s']:,.0f} req/s intended")
    modelled = model_figures(scenario, path, args.model_duration_s)
    summary = trio.run(_run, args, path, scenario, pattern, plan, out)
    summary["modelled"] = modelled
    summary["figures"] = label_figures(summary, pattern, modelled)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.txt").write_text(summary_text(summary) + "\n")
    print(summary_text(summary))
    print(f"streamscale load --hybrid: wrote {out}/summary.json, {out}/summary.txt")
    if not summary["origin"]["rate_achieved"]:  # not a valid run: exit 3, say why
        print(f"streamscale load --hybrid: {summary['origin']['verdict']}", file=sys.stderr)
        return NOT_ACHIEVED_EXIT
    return 0


def drive_plan(pattern: OriginPattern, rungs: list[str], *, max_loops: int,
               max_steering: int) -> dict[str, Any]:
    """Which loops to run here: the full-scale count capped, split over (rendition, mode)
    in the pattern's proportions, each on the real rung standing in for its rendition."""
    n = min(round(pattern.loops), max_loops)
    keys = [(i, mode) for i in range(len(pattern.renditions)) for mode in ("ll", "classic")]
    weights = [pattern.renditions[i].ll_loops if mode == "ll"
               else pattern.renditions[i].classic_loops for i, mode in keys]
    counts = allocate(weights, n)
    loops: list[tuple[str, str]] = []
    mapping = []
    for (i, mode), count in zip(keys, counts, strict=True):
        rung = rung_for(i, len(pattern.renditions), rungs)
        loops += [(rung, mode)] * count
        if count:
            mapping.append({"rendition": pattern.renditions[i].name, "mode": mode,
                            "rung": rung, "loops": count})
    fraction = n / pattern.loops if pattern.loops > 0 else 0.0
    steering_wanted = fraction * pattern.viewers
    steering = min(round(steering_wanted), max_steering)
    ll = sum(1 for _, m in loops if m == "ll")
    intended = ll * 2 / pattern.part_s + (len(loops) - ll) * 2 / pattern.segment_s
    return {
        "loops_full_scale": pattern.loops, "loops_driven": len(loops), "loops": loops,
        "fraction_driven": fraction, "mapping": mapping,
        "intended_req_per_s": intended,
        "steering_pollers_at_fraction": steering_wanted, "steering_pollers": steering,
    }


async def _run(args: argparse.Namespace, path: Path, scenario: Scenario,
               pattern: OriginPattern, plan: dict[str, Any], out: Path) -> dict[str, Any]:
    from streamscale.testing import running_platform

    from .run import SERVICES, check_local, platform_config

    with trio.fail_after(args.duration + LIVE_WAIT_S + 120), \
            tempfile.TemporaryDirectory(prefix="streamscale-hybrid-") as data_dir:
        config = platform_config(Path(data_dir))
        config = dataclasses.replace(config, media=dataclasses.replace(
            config.media, part_s=pattern.part_s, segment_s=pattern.segment_s))
        async with running_platform(config, SERVICES) as p, \
                httpx.AsyncClient(timeout=30) as api:
            stream = await caster_stream(api, p.api_url)
            stream_id = stream["stream"]["id"]
            publish_url = f"{p.url('media', 'rtmp')}/{stream['stream_key']}"
            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish, publish_url, args.duration + LIVE_WAIT_S + 30)
                master_url = await wait_live(api, p.api_url, stream_id, LIVE_WAIT_S)
                wall0 = trio.current_time()
                cpu_live = resource.getrusage(resource.RUSAGE_SELF)
                origin_url = check_local(p.url("origin", "hls"))  # 127.0.0.1 only
                spec = DriverSpec(origin_url=origin_url, stream_id=stream_id,
                                  loops=tuple(plan["loops"]),
                                  steering_pollers=plan["steering_pollers"],
                                  duration_s=args.duration, warmup_s=WARMUP_S,
                                  part_s=pattern.part_s, segment_s=pattern.segment_s,
                                  spread=args.spread, client=args.client)
                players: dict[str, Any] = {}
                driver: dict[str, Any] = {}
                stop = trio.Event()
                window = _metrics_window(p.api_url, stream_id)
                if window is not None:
                    await nursery.start(window.run, api, stop)

                peer: dict[str, Any] = {}

                async def run_driver() -> None:
                    driver.update(await _driver(spec, out))

                async def run_peer() -> None:  # the same process with no loops: box lag
                    idle = dataclasses.replace(spec, loops=(), steering_pollers=0)
                    peer.update(await _driver(idle, out, name="peer"))

                async def run_players() -> None:
                    if args.players > 0:
                        players.update(await _players(args, path, scenario, p.api_url,
                                                      stream_id, master_url, out))

                async with trio.open_nursery() as both:
                    both.start_soon(run_driver)
                    both.start_soon(run_peer)
                    both.start_soon(run_players)
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
                wall = trio.current_time() - wall0
                platform_metrics: dict[str, Any] = {}
                if window is not None:
                    await window.finish(api)
                    platform_metrics = {"figures": window.figures(), "notes": window.notes()}
                stop.set()
                driver["peer_lag_p99_s"] = peer.get("lag_p99_s")
                nursery.cancel_scope.cancel()
    platform_cpu_s = (cpu1.ru_utime - cpu_live.ru_utime) + (cpu1.ru_stime - cpu_live.ru_stime)
    summary = build_summary(args, scenario, pattern, plan, driver, players,
                            platform_cores=platform_cpu_s / wall)
    summary["platform_metrics"] = platform_metrics or {
        "notes": "loadtest.metrics_window is not in this tree: no /metrics figures"}
    return summary


def _metrics_window(api_url: str, stream_id: str) -> Any:
    """The platform's own /metrics over the run (loadtest.metrics_window, another part of
    the load run) when that module is present; None otherwise."""
    try:
        module = importlib.import_module("loadtest.metrics_window")
    except ImportError:
        return None
    return module.MetricsWindow(f"{api_url.removesuffix('/api')}/metrics", stream_id)


async def _driver(spec: DriverSpec, out: Path, name: str = "driver") -> dict[str, Any]:
    spec_path, result_path = out / f"{name}_spec.json", out / f"{name}_result.json"
    spec_path.write_text(spec.to_json())
    result_path.unlink(missing_ok=True)
    with trio.fail_after(spec.duration_s + 60):
        done = await trio.run_process(
            [sys.executable, "-m", "loadtest.hybrid_driver", str(spec_path), str(result_path)],
            check=False, cwd=REPO)
    if done.returncode != 0 or not result_path.is_file():
        return {"error": f"driver exited {done.returncode}"}
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


async def _players(args: argparse.Namespace, path: Path, scenario: Scenario, api_url: str,
                   stream_id: str, master_url: str, out: Path) -> dict[str, Any]:
    """The load run's own Locust players, scaled so about `--players` watch at once."""
    from .run import _locust, check_local

    peak = scenario.workload.peak_viewers * peak_fraction(scenario)
    scale = args.players / peak
    settings = LoadSettings(
        scenario=str(path), scale=scale, duration_s=args.duration,
        seed=args.seed if args.seed is not None else scenario.run.seed, api_url=api_url,
        chat_url="", rtmp_url="", stream_id=stream_id, master_url=check_local(master_url),
        classic_share=args.classic_share, chat_users=0, api_users=0, streamers=0)
    code = await _locust(settings, out, args.duration)
    summary = summarise(out / "locust_stats.csv", out / "locust_failures.csv")
    plan = ArrivalPlan.from_scenario(scenario, scale=scale, duration_s=args.duration)
    summary.update({"locust_exit_code": code, "scale": scale,
                    "peak_players_planned": plan.peak_viewers()})
    # no chat users in a hybrid run: the chat SLO is not theirs to judge
    summary["slo"] = {k: v for k, v in slo_verdicts(summary, scenario.slo).items()
                      if k != "chat_delivery_p99_s"}
    return summary


def model_figures(scenario: Scenario, path: Path, duration_s: float) -> dict[str, Any]:
    """The model's full-scale figures: the committed report if it is for this scenario
    file as it is now (same digest), else a short run here (one replication)."""
    from sim.report import scenario_digest
    from sim.runner import run_scenario, with_overrides

    result = REPO / "reports" / scenario.name / "result.json"
    digest = scenario_digest(scenario)
    if result.is_file():
        saved = json.loads(result.read_text())
        if saved.get("scenario_sha256") == digest:
            summary = saved["runs"][0]["summary"]
            return {"source": f"read {result.relative_to(REPO)} (digest matches the "
                              f"scenario; {saved['replications']} replications, "
                              f"{saved['duration_s']:g} s)",
                    **{k: v["mean"] for k, v in summary.items()}}
    sc = with_overrides(dataclasses.replace(scenario, variants=()), replications=1,
                        duration_s=min(duration_s, scenario.run.duration_s))
    run = run_scenario(sc)
    why = "stale digest" if result.is_file() else "no committed report"
    return {"source": f"model run here ({why}): streamscale sim --no-variants, "
                      f"1 replication, {sc.run.duration_s:g} s",
            **{k: m for k, (m, _) in run.summary.items()}}
