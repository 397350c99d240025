"""`streamscale chaos NAME`: run a drill (chaos/experiments/NAME.json, a scenario name with
a drill, or a path to an experiment) on a platform started for it, or on a running one
(`--target`), and write reports/NAME/chaos/journal.json and summary.txt."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from . import browser_actions, browser_players
from .drill import Target, open_drill
from .plots import player_timeline, plot_players
from .runner import (
    ExperimentError,
    Journal,
    configuration,
    database,
    load_experiment,
    media_settings,
    run_experiment,
    starts_platform,
    write_journal,
)
from .runner import summary as journal_summary
from .transcode_actions import plot_transcode, transcode_timeline

EXPERIMENTS = Path(__file__).parent / "experiments"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamscale chaos", description=__doc__)
    p.add_argument("name", help="drill name (" + ", ".join(available()) +
                   ") or path to a Chaos Toolkit experiment (.json)")
    p.add_argument("--short", action="store_true", help="the CI-short version (< 1 min)")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="override a configuration value (JSON value or string)")
    p.add_argument("--target", help="a running platform's web base URL (default: start one)")
    p.add_argument("--rtmp", help="with --target: the RTMP ingest URL, e.g. "
                   "rtmp://127.0.0.1:1935/live")
    p.add_argument("--cdn", action="append", default=[], metavar="PATHWAY=URL",
                   help="with --target: a CDN pathway's edge base URL (repeat: a=..., b=...)")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="reports folder")
    p.add_argument("--no-browser", action="store_true", help="no hls.js players in Chromium "
                   "(browser_players: 0): the HTTP players only")
    return p


def available() -> list[str]:
    return sorted(path.stem for path in EXPERIMENTS.glob("*.json"))


def resolve(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".json":
        if not path.is_file():
            raise ExperimentError(f"no experiment file {path}")
        return path
    candidate = EXPERIMENTS / f"{name}.json"
    if not candidate.is_file():
        raise ExperimentError(f"no drill named {name!r}; drills: {', '.join(available())}")
    return candidate


def _target(args: argparse.Namespace) -> Target | None:
    if not args.target:
        if args.rtmp or args.cdn:
            raise ExperimentError("--rtmp and --cdn go with --target")
        return None
    if not args.rtmp or not args.cdn:
        raise ExperimentError("--target needs --rtmp and at least one --cdn PATHWAY=URL")
    cdns = {}
    for item in args.cdn:
        pathway, sep, url = item.partition("=")
        if not sep or not url.startswith("http"):
            raise ExperimentError(f"--cdn {item!r}: expected PATHWAY=http://host:port")
        cdns[pathway] = url.rstrip("/")
    return Target(args.target.rstrip("/"), args.rtmp.rstrip("/"), cdns)


def _check_browser(args: argparse.Namespace, config: dict[str, Any],
                   target: Target | None) -> None:
    """--no-browser, or before any platform starts: can the drill's hls.js players run?"""
    if "browser_players" not in config:
        return
    if args.no_browser:
        config["browser_players"] = 0
    if not config["browser_players"]:
        return
    reason = browser_players.unavailable()
    if reason is None and target is not None:
        reason = "they need the drill's own platform, not --target; add --no-browser"
    if reason is not None:
        raise ExperimentError(f"{args.name} plays {config['browser_players']} hls.js players "
                              f"in Chromium, but {reason}")


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ExperimentError(f"--var {item!r}: expected NAME=VALUE")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


async def drill(experiment: dict[str, Any], config: dict[str, Any],
                target: Target | None = None) -> Journal:
    """Run `experiment` with a Drill (on `target`, or a platform started for it)."""
    async with open_drill(target, start_platform=starts_platform(experiment),
                          database=database(experiment),
                          media=media_settings(experiment, config)) as opened:
        journal = await run_experiment(experiment, config=config)
        if opened.players is not None:  # the players' fetches over time, for the plot
            journal["x-streamscale"] = {"players": player_timeline(opened.players, journal)}
            browser = browser_actions.pool()
            if browser is not None:  # hls.js players beside them
                journal["x-streamscale"]["players"]["browser"] = browser.timeline(
                    datetime.fromisoformat(journal["start"]).timestamp())
        monitor = opened.state.get("transcode_monitor")
        if monitor is not None:  # the ladders' backlog and shed rungs over time
            journal.setdefault("x-streamscale", {})["transcode"] = transcode_timeline(
                monitor, journal)
        return journal


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "streamscale", "alembic", "hypercorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        path = resolve(args.name)
        experiment = load_experiment(path)
        config = configuration(experiment, short=args.short,
                               overrides=_overrides(args.var))
        target = _target(args)
        _check_browser(args, config, target)
    except ExperimentError as exc:
        print(f"streamscale chaos: {exc}", file=sys.stderr)
        return 2
    journal = trio.run(drill, experiment, config, target)
    out = write_journal(journal, args.reports / path.stem / "chaos")
    timeline = journal.get("x-streamscale", {}).get("players")
    if timeline:
        plot_players(timeline, journal["experiment"]["title"], out.parent / "players.png")
    transcode = journal.get("x-streamscale", {}).get("transcode")
    if transcode:
        plot_transcode(transcode, journal["experiment"]["title"], out.parent / "transcode.png")
    print(journal_summary(journal))
    print(f"journal: {out}")
    return 0 if journal["status"] == "completed" else 1
