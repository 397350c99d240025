"""The model and the platform agree on the small-scale baseline (issue 13).

A real load run (the platform in-process, ffmpeg publishing through the real ladder,
Locust players on the real edges, chat users over WebSocket), then `streamscale report`
on it: the model, run on the scenario as that run deployed it with the calibrated costs,
must predict startup p95, live latency p95, origin media requests/s, chat delivery p99
and transcode lag within the tolerances the report states (sim.compare.TOLERANCES).
A model change that moves a prediction out of tolerance fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim import compare

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_model_and_platform_agree_on_the_small_baseline(tmp_path: Path) -> None:
    load = tmp_path / "load"
    done = subprocess.run(
        [sys.executable, "-m", "streamscale.cli", "load", "baseline", "--duration", "40",
         "--scale", "tiny", "--out", str(load)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "compare"
    report = subprocess.run(
        [sys.executable, "-m", "streamscale.cli", "report", "baseline", "--load", str(load),
         "--out", str(out), "--fail-on-disagree"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    data: dict[str, Any] = json.loads((out / "comparison.json").read_text())
    rows = {r["metric"]: r for r in data["rows"]}
    assert set(rows) == {t.metric for t in compare.TOLERANCES}
    assert all(r["measured"] is not None for r in rows.values()), rows  # all measured
    assert report.returncode == 0 and data["agree"], (
        (out / "comparison.txt").read_text() + report.stderr[-2000:])
    assert "the model and the run agree" in report.stdout
