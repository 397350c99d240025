"""`streamscale load SCENARIO`: the scenario's viewers, scaled down, against the real platform.

1. Start the platform in this process (gateway, media, origin, edges, chat, analytics on
   free 127.0.0.1 ports, data in a temporary folder) or use a running one (`--target`,
   127.0.0.1 only). Login and write rate limits are raised: every load user comes from
   127.0.0.1, and the per-IP limit would refuse them as one abusive client.
2. Sign a caster up, start a stream and publish it with ffmpeg (RTMP, real transcode).
3. Run Locust headless as a subprocess (`loadtest/locustfile.py`; gevent never enters this
   trio process) with CSV and HTML into `reports/<scenario>/load/`, while sampling the
   stream's viewer count from the API and the platform's `/metrics` (metrics_window.py).
4. Write `summary.json`: startup p95, rebuffer ratio, live latency p95, error rate,
   requests/s, the API's peak viewer count, each beside the scenario's SLO; origin
   requests/s, edge hit ratio and transcode lag from `/metrics`.

Bounded: Locust gets `--duration` plus a stop timeout, and the whole run a deadline.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from sim.scenario import Scenario, ScenarioError, load_scenario
from streamscale.backends.extras import MissingExtra
from streamscale.config import CdnConfig, Config
from streamscale.config import load as load_config

from . import hybrid
from .arrivals import ArrivalPlan, chat_arrivals, parse_scale, slots_for, watching
from .deployment import DeploymentProbe
from .metrics_window import MetricsWindow
from .publishing import LoadRefused, caster_stream, publish, viewer_tokens, wait_live
from .settings import LoadSettings
from .summary import slo_verdicts, summarise

log = logging.getLogger(__name__)
LADDER = "source,360p,160p"  # three rungs for the players' ABR; one ladder fits this box
LIVE_WAIT_S = 30.0  # the published stream must list segments within this
STOP_TIMEOUT_S = 5  # Locust lets sessions end this long after the duration
SERVICES = ("gateway", "media", "origin", "edge", "chat", "analytics")
REPO = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamscale load", description=__doc__.splitlines()[0])
    p.add_argument("scenario", help="scenario name (scenarios/NAME.toml) or path")
    p.add_argument("--scale", default="tiny",
                   help="viewers x this: tiny (1e-5), small (1e-4), medium (1e-3) or a number")
    p.add_argument("--duration", type=float, default=60.0,
                   help="run seconds; the scenario's timeline is compressed to fit")
    p.add_argument("--target", help="a running platform's gateway, e.g. http://127.0.0.1:8080")
    p.add_argument("--chat-url", help="with --target: the chat WebSocket (ws://.../chat)")
    p.add_argument("--chat-users", type=int,
                   help="chat slots: Locust users that take the chat sessions of the schedule "
                        "(viewers x chat_join_fraction) as they come; default: enough for the "
                        "planned peak with Poisson headroom; 0: no chat")
    p.add_argument("--api-users", type=int, default=2)
    p.add_argument("--streamers", type=int, default=0,
                   help="extra Locust streamer users, each publishing its own stream")
    p.add_argument("--classic-share", type=float, default=0.0,
                   help="share of players loading whole segments instead of LL-HLS parts")
    p.add_argument("--out", type=Path, help="default: reports/<scenario>/load")
    p.add_argument("--seed", type=int)
    hybrid.add_arguments(p)  # --hybrid: the 1M-viewer run (loadtest.hybrid)
    return p


def find_scenario(name: str) -> Path:
    for candidate in (Path(name), Path("scenarios") / f"{name}.toml",
                      REPO / "scenarios" / f"{name}.toml"):
        if candidate.is_file():
            return candidate
    raise ScenarioError(f"no scenario {name!r} (a path, or a name in scenarios/)")


def check_local(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise ValueError(f"load runs target 127.0.0.1 only, not {host!r} ({url})")
    return url.rstrip("/")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        for module in ("locust", "websocket"):
            if importlib.util.find_spec(module) is None:
                raise MissingExtra("streamscale load", module, "load")
        path = find_scenario(args.scenario)
        scenario = load_scenario(path)
        scale = parse_scale(args.scale)
        if args.target:
            check_local(args.target)
        if args.chat_url:
            check_local(args.chat_url)
        plan = ArrivalPlan.from_scenario(scenario, scale=scale, duration_s=args.duration)
    except (MissingExtra, ScenarioError, ValueError) as exc:
        print(f"streamscale load: {exc}", file=sys.stderr)
        return 2
    if args.hybrid:  # full-scale origin pattern + sampled players, the rest modelled
        return hybrid.main(args, path, scenario)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = args.out or Path("reports") / scenario.name / "load"
    out.mkdir(parents=True, exist_ok=True)
    chat_users = args.chat_users
    if chat_users is None:
        chat_users = slots_for(plan.peak_viewers() * scenario.workload.chat_join_fraction)
    refused: list[BaseException] = []
    try:
        summary = trio.run(_run, args, path, scenario, scale, plan, out, chat_users)
    except* LoadRefused as group:  # raised in a nursery: a group, perhaps of groups
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        refused.append(leaf)
    if refused:
        print(f"streamscale load: {refused[0]}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k not in ("by_name", "slo")},
                     indent=2))
    print(f"streamscale load: wrote {out}/summary.json, {out}/report.html, {out}/locust_*.csv")
    return 0


def platform_config(data_dir: Path) -> Config:
    base = load_config(None)
    return dataclasses.replace(
        base, data_dir=data_dir,
        gateway=dataclasses.replace(base.gateway, port=0, login_rate_per_minute=100_000,
                                    write_rate_per_minute=100_000),
        media=dataclasses.replace(base.media, rtmp_port=0, ladder=LADDER),
        origin=dataclasses.replace(base.origin, port=0),
        chat=dataclasses.replace(base.chat, port=0),
        # players fetch every part (~0.33 s): a 3 s idle window counts the concurrent ones,
        # where the 10 s default would also count sessions that ended (runs churn fast)
        # edges on free ports too: the defaults (8090, 8091) may be taken on this machine
        cdn=CdnConfig(edges=tuple(dataclasses.replace(e, port=0) for e in base.cdn.edges),
                      viewer_sample_s=1.0, records_flush_s=0.5, viewer_idle_s=3.0),
    )


@dataclasses.dataclass
class _Urls:
    api: str  # .../api
    chat: str
    rtmp: str
    origin: str = ""  # http://127.0.0.1:port ("" with --target: probed through the master)


async def _run(args: argparse.Namespace, path: Path, scenario: Scenario, scale: float,
               plan: ArrivalPlan, out: Path, chat_users: int) -> dict[str, Any]:
    with trio.fail_after(args.duration + LIVE_WAIT_S + 120):
        if args.target:
            urls = _Urls(f"{args.target.rstrip('/')}/api", args.chat_url or "", "")
            if not args.chat_url:
                chat_users = 0
            return await _drive(args, path, scenario, scale, plan, out, chat_users, urls)
        from streamscale.testing import running_platform

        with tempfile.TemporaryDirectory(prefix="streamscale-load-") as data_dir:
            async with running_platform(platform_config(Path(data_dir)), SERVICES) as p:
                urls = _Urls(p.api_url, p.url("chat", "ws") if _has(p, "chat", "ws")
                             else "", p.url("media", "rtmp"), p.url("origin", "hls"))
                return await _drive(args, path, scenario, scale, plan, out, chat_users, urls)


def _has(platform: Any, service: str, label: str) -> bool:
    try:
        platform.url(service, label)
    except KeyError:
        return False
    return True


async def _drive(args: argparse.Namespace, path: Path, scenario: Scenario, scale: float,
                 plan: ArrivalPlan, out: Path, chat_users: int, urls: _Urls) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as api:
        stream = await caster_stream(api, urls.api)
        publish_url = stream["publish_url"] if not urls.rtmp else \
            f"{urls.rtmp}/{stream['stream_key']}"
        stream_id = stream["stream"]["id"]
        viewer_samples: list[int] = []  # the API's viewer_count, about once a second
        by_rendition: dict[str, int] = {}  # the most viewers each rendition had at a sample
        rendition_s: dict[str, float] = {}  # viewer-seconds per rendition (samples ~1 s apart)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, publish_url, args.duration + LIVE_WAIT_S + 30)
            master_url = await wait_live(api, urls.api, stream_id, LIVE_WAIT_S)
            chat_tokens = await viewer_tokens(api, urls.api, chat_users) if urls.chat else []
            settings = LoadSettings(
                scenario=str(path), scale=scale, duration_s=args.duration,
                seed=args.seed if args.seed is not None else scenario.run.seed,
                api_url=urls.api, chat_url=urls.chat if chat_users else "",
                rtmp_url=check_local(urls.rtmp) if urls.rtmp else "", stream_id=stream_id,
                master_url=check_local(master_url), classic_share=args.classic_share,
                chat_users=chat_users if urls.chat else 0, chat_tokens=tuple(chat_tokens),
                api_users=args.api_users,
                streamers=args.streamers if urls.rtmp else 0)
            done = trio.Event()

            async def sample_viewers() -> None:
                while not done.is_set():
                    body = (await api.get(f"{urls.api}/streams/{stream_id}")).json()
                    viewer_samples.append(int(body.get("viewer_count", 0)))
                    for name, n in (body.get("viewers_by_rendition") or {}).items():
                        by_rendition[name] = max(by_rendition.get(name, 0), int(n))
                        rendition_s[name] = rendition_s.get(name, 0.0) + int(n)
                    with trio.move_on_after(1.0):  # sampling cadence, not a sync
                        await done.wait()

            nursery.start_soon(sample_viewers)
            # the deployment's own figures for `streamscale report` (loadtest.deployment)
            probe = DeploymentProbe(master_url, urls.origin)
            nursery.start_soon(probe.run, api, done)
            # the platform's own /metrics over the Locust window (loadtest/metrics_window.py)
            window = MetricsWindow(f"{urls.api.removesuffix('/api')}/metrics", stream_id)
            await nursery.start(window.run, api, done)
            code = await _locust(settings, out, args.duration)
            await window.finish(api)
            done.set()
            nursery.cancel_scope.cancel()
    summary = summarise(out / "locust_stats.csv", out / "locust_failures.csv")
    arrivals = plan.schedule(settings.seed)
    second_half = [args.duration * (0.5 + i / 40) for i in range(20)]
    summary.update({
        "scenario": scenario.name, "scale": scale, "time_scale": plan.time_scale,
        "duration_s": args.duration, "session_mean_s": plan.session_mean_s,
        "peak_viewers_planned": plan.peak_viewers(), "player_slots": plan.slots(),
        "joins_scheduled": len(arrivals),
        "chat_users": settings.chat_users, "api_users": settings.api_users,
        # chat sessions on the schedule: the viewers who open the chat (none without chat)
        "chat_join_fraction": scenario.workload.chat_join_fraction if settings.chat_users
        else 0.0,
        "chat_sessions_scheduled": len(chat_arrivals(
            arrivals, scenario.workload.chat_join_fraction, settings.seed))
        if settings.chat_users else 0,
        "streamers": settings.streamers, "stream_id": stream_id,
        "viewers_peak_api": max(viewer_samples, default=0),
        # the second half of the run, against the plan's concurrency there
        "viewers_mean_api_second_half": _mean(viewer_samples[len(viewer_samples) // 2:]),
        "viewers_planned_second_half": _mean([plan.viewers(t) for t in second_half]),
        # the seeded schedule's own sessions (Poisson draws at a tiny scale stray from plan)
        "viewers_scheduled_second_half": _mean([watching(arrivals, t) for t in second_half]),
        "viewers_scheduled_peak": max(watching(arrivals, i / 2)
                                      for i in range(int(2 * args.duration))),
        "viewers_by_rendition_peak": by_rendition,
        "viewer_seconds_by_rendition": rendition_s,
        "deployment": probe.as_dict(),
        # the CDNs the players' master names, in steering order (in-process: this config)
        "cdns": None if args.target else _cdn_groups(),
        "locust_exit_code": code,
        # other work on the box inflates what depends on CPU (startup, chat p99, lag)
        "machine_load_1min": os.getloadavg()[0], "machine_cores": os.cpu_count(),
        "target": args.target or "in-process platform",
        "measured": "every figure here was measured on this machine at this scale",
    })
    summary.update(window.figures())
    summary["measured"] = {"summary": summary["measured"], **window.notes()}
    summary["slo"] = slo_verdicts(summary, scenario.slo)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _cdn_groups() -> list[dict[str, Any]]:
    groups: dict[str, int] = {}
    for edge in load_config(None).cdn.edges:
        groups[edge.cdn] = groups.get(edge.cdn, 0) + 1
    return [{"name": name, "edges": n} for name, n in groups.items()]


def _mean(values: list[int] | list[float]) -> float | None:
    return sum(values) / len(values) if values else None


async def _locust(settings: LoadSettings, out: Path, duration_s: float) -> int:
    command = [
        sys.executable, "-m", "locust", "-f", str(Path(__file__).parent / "locustfile.py"),
        "--headless", "--host", settings.api_url, "--csv", str(out / "locust"),
        "--html", str(out / "report.html"), "--stop-timeout", str(STOP_TIMEOUT_S),
        "--loglevel", "WARNING", "--only-summary", "--exit-code-on-error", "0",
    ]
    env = {**os.environ, **settings.to_env()}
    with trio.fail_after(duration_s + STOP_TIMEOUT_S + 60):
        result = await trio.run_process(command, env=env, check=False,
                                        stdout=subprocess.DEVNULL)
    return int(result.returncode)
