"""`streamscale load`: bad input is refused clearly; end to end against the real platform
(ffmpeg publishing through the real transcode path, Locust as a subprocess, players,
chat, API and one streamer user)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamscale.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_unknown_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "no-such-scenario"]) == 2
    assert "no scenario 'no-such-scenario'" in capsys.readouterr().err


def test_remote_targets_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "baseline", "--target", "http://example.com:8080"]) == 2
    assert "127.0.0.1 only" in capsys.readouterr().err


def test_bad_scale_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "baseline", "--scale", "huge"]) == 2
    assert "--scale" in capsys.readouterr().err


def test_without_locust_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "locust" else real(name, *a))
    assert main(["load", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "'locust'" in err and "streamscale[load]" in err


@pytest.mark.slow
def test_load_baseline_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "load"
    done = subprocess.run(
        [sys.executable, "-m", "streamscale.cli", "load", "baseline", "--duration", "15",
         "--scale", "tiny", "--streamers", "1", "--classic-share", "0.3", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("locust_stats.csv", "locust_failures.csv", "report.html", "summary.json"):
        assert (out / name).is_file(), name
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    by_name = summary["by_name"]
    assert by_name["GET part"]["count"] > 0  # players loaded LL-HLS parts
    assert by_name["GET playlist (blocking)"]["count"] > 0
    assert by_name["GET segment"]["count"] > 0  # the classic-HLS share loaded segments
    assert by_name["GET master"]["count"] > 0 and by_name["GET steering"]["count"] > 0
    server_errors = [f for f in summary["failure_kinds"] if "HTTP 5" in f["error"]]
    assert server_errors == []
    assert summary["sessions"] > 0 and summary["sessions_without_media"] == 0
    assert summary["startup_p95_s"] is not None and summary["live_latency_p95_s"] is not None
    assert summary["rebuffer_ratio"] is not None
    assert summary["viewers_peak_api"] > 0  # the platform counted the players (CMCD sid)
    assert by_name["WS send->ack"]["count"] > 0  # chat users posted and were acked
    assert summary["chat_delivery_p99_s"] is not None
    # the streamer user started its own stream and its ffmpeg published throughout
    started = by_name["POST stream start"]
    assert (started["count"], started["failures"]) == (1, 0)
    assert by_name["RTMP publish"]["count"] > 0 and by_name["RTMP publish"]["failures"] == 0
    assert set(summary["slo"]) >= {"startup_p95_s", "live_latency_p95_s", "error_rate"}
    # the platform's own /metrics over the Locust window (loadtest/metrics_window.py)
    assert summary["locust_window_s"] >= 15 and summary["metrics_scrapes"] >= 15
    assert summary["origin_requests_per_s"] > 0
    by_kind = summary["origin_requests_by_kind_per_s"]
    assert sum(by_kind.values()) == pytest.approx(summary["origin_requests_per_s"])
    assert by_kind["blocking"] > 0 and by_kind["segment"] > 0  # edge misses reach it
    assert 0 <= summary["edge_hit_ratio"] < 1  # the first fetch of anything is a miss
    assert 0 <= summary["transcode_lag_p95_s"] <= summary["transcode_lag_max_s"]
    assert 0 <= summary["shed_rungs_max"] <= 2  # of source,360p,160p (busy box: may shed)
    for name in ("origin_requests_per_s", "edge_hit_ratio", "transcode_lag_p95_s",
                 "shed_rungs_max"):
        assert not summary["measured"][name].startswith("not measured"), name


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["load", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--scale" in out and "--duration" in out and "--target" in out
