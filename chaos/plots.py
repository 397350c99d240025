"""A drill's players over time: fetches per second by pathway, ok and failed, with the
method's span shaded; with hls.js players (timeline["browser"], chaos.browser_players), a
second panel: how many of them fetch from each CDN and how many stall, each second;
written beside the journal as players.png."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from .players import PlayerPool


def player_timeline(players: PlayerPool, journal: dict[str, Any]) -> dict[str, Any]:
    """Fetches per whole second since the journal's start, by pathway and outcome, and the
    method's span on the same axis (for the journal and the plot)."""
    start = datetime.fromisoformat(journal["start"]).timestamp()
    offset_s = time.time() - trio.current_time() - start  # players' clock -> journal's

    counts: Counter[tuple[int, str, bool]] = Counter(
        (int(f.at_s + offset_s), f.pathway, f.ok) for f in players.fetches)
    series: dict[str, list[list[int]]] = {}
    for (second, pathway, ok), n in sorted(counts.items()):
        series.setdefault(f"{pathway} {'ok' if ok else 'failed'}", []).append([second, n])
    timeline: dict[str, Any] = {"unit": "fetches per second since the drill started",
                                "series": series}
    run = [r for r in journal["run"] if r.get("start") and r.get("end")]
    if run:
        timeline["method_s"] = [
            round(datetime.fromisoformat(run[0]["start"]).timestamp() - start, 1),
            round(datetime.fromisoformat(run[-1]["end"]).timestamp() - start, 1)]
    return timeline


def plot_players(timeline: dict[str, Any], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    browser = timeline.get("browser")
    fig, axes = plt.subplots(2 if browser else 1, 1, figsize=(9, 7 if browser else 4),
                             sharex=True, squeeze=False)
    ax = axes[0][0]
    for label, points in sorted(timeline["series"].items()):
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        ax.plot(xs, ys, label=label, marker="o", markersize=3,
                linestyle="--" if "failed" in label else "-")
    if timeline.get("method_s"):
        ax.axvspan(*timeline["method_s"], color="orange", alpha=0.15, label="method (fault)")
    ax.set_xlabel("seconds since the drill started")
    ax.set_ylabel("HTTP player fetches per second")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    if browser:
        _plot_browser(axes[1][0], browser, timeline.get("method_s"))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_browser(ax: Any, browser: dict[str, Any], method_s: list[float] | None) -> None:
    for label, points in sorted(browser["series"].items()):
        if label.endswith(("latency s", "errors")):
            continue
        ax.step([p[0] for p in points], [p[1] for p in points], where="post", label=label,
                linestyle="--" if "stalled" in label else "-")
    if method_s:
        ax.axvspan(*method_s, color="orange", alpha=0.15)
    if browser.get("fault_s") is not None:
        ax.axvline(browser["fault_s"], color="red", linewidth=1, label="fault")
        if browser.get("steering_moved_s") is not None:
            ax.axvline(browser["fault_s"] + browser["steering_moved_s"], color="grey",
                       linestyle=":", label="steering moves off the CDN")
    moved = [f["failover_s"] for f in browser.get("failovers", [])]
    shown = ", ".join("-" if m is None else f"{m:.1f}" for m in moved)
    ax.set_title(f"{browser['players']} hls.js players in Chromium; failover s: {shown}",
                 fontsize=9)
    ax.set_xlabel("seconds since the drill started")
    ax.set_ylabel("hls.js players")
    ax.set_ylim(-0.2, browser["players"] + 0.5)
    ax.legend(fontsize=8)
