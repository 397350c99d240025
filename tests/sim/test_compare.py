"""`streamscale report`: the deployment the model runs on, the comparison and its verdicts.

A measured run's summary here is written out by hand (the figures of a real baseline run
on this machine, 2026-12-04); tests/loadtest/test_model_agreement.py compares a run made
in the test itself.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from sim import calibration, compare
from sim.runner import run_scenario
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
RUN: dict[str, Any] = {
    "scenario": "baseline", "scale": 1e-5, "time_scale": 90.0, "duration_s": 40.0,
    "locust_window_s": 46.7, "session_mean_s": 20.0, "peak_viewers_planned": 10.0,
    "chat_users": 5,
    "startup_p95_s": 0.15, "live_latency_p95_s": 2.5, "chat_delivery_p99_s": 0.078,
    "transcode_lag_p95_s": 0.23,
    "origin_requests_by_kind_per_s": {"master": 0.28, "playlist": 0.41, "blocking": 5.93,
                                      "part": 3.32, "segment": 0.0, "init": 0.04,
                                      "other": 1.5},
    "viewer_seconds_by_rendition": {"360p": 300.0, "source": 10.0, "160p": 10.0},
    "cdns": [{"name": "a", "edges": 1}, {"name": "b", "edges": 1}],
    "deployment": {
        "renditions": [
            {"name": "360p", "bandwidth_bps": 941348.0, "independent_s": 0.667,
             "join_behind_s": 1.334},
            {"name": "source", "bandwidth_bps": 6128000.0, "independent_s": 2.0,
             "join_behind_s": 1.334},
            {"name": "160p", "bandwidth_bps": 378000.0, "independent_s": 0.667,
             "join_behind_s": 1.334}],
        "part_target_s": 0.334, "segment_target_s": 2.0, "part_hold_back_s": 1.002,
        "join_behind_s": 1.334, "ready_after_end_s_mean": 0.017, "probe_requests": 147,
        "errors": []},
}


@pytest.fixture(scope="module")
def baseline() -> Any:
    return load_scenario(ROOT / "scenarios" / "baseline.toml")


@pytest.fixture(scope="module")
def table() -> calibration.CostTable:
    return calibration.load(calibration.REFERENCE_PATH)


def test_the_deployment_is_the_run_on_this_box(baseline: Any,
                                               table: calibration.CostTable) -> None:
    sc = compare.deployment(baseline, RUN, table)
    w, d = sc.workload, sc.delivery
    assert (w.peak_viewers, w.channels, w.streams) == (10, 1, 1)
    assert w.session_mean_s == 20.0 and sc.run.duration_s == 40.0
    assert w.shape == ((0.0, 1.0), (40.0, 1.0))  # 3600 s compressed 90 times
    assert [r.name for r in w.renditions] == ["360p", "source", "160p"]
    assert [round(r.share, 4) for r in w.renditions] == [0.9375, 0.0312, 0.0312]
    assert [r.independent_s for r in w.renditions] == [0.667, 2.0, 0.667]
    assert w.renditions[1].transcode_cores == 0.0  # the source is passed through
    assert w.chat_msgs_per_viewer_s == pytest.approx(baseline.workload.chat_msgs_per_viewer_s
                                                     * 90)
    assert w.chat_join_fraction == 0.5 and w.join_api_requests == 1
    assert (d.part_s, d.segment_s, d.holdback_s) == (0.334, 2.0, 1.334)
    assert d.pipeline_s == pytest.approx(0.017 + 0.334 / 2)
    assert d.decode_s == 0.0 and not d.shield and d.coalescing
    assert [(c.name, c.edges, c.weight) for c in sc.cdns] == [("a", 1, 1.0), ("b", 1, 0.0)]
    small = table.measurements["small_request_us"].value
    assert sc.cdns[0].edge_requests_per_s == pytest.approx(1e6 / small)
    assert sc.costs.small_request_us == small  # calibrated: measured here


def test_measured_origin_requests_leave_out_the_probe_and_steering() -> None:
    m = compare.measured(RUN)
    media = 0.41 + 5.93 + 3.32 + 0.0 + 0.04
    assert m["origin_media_requests_per_s"] == pytest.approx(media - 147 / 46.7)
    missing = compare.measured({k: v for k, v in RUN.items()
                                if k != "origin_requests_by_kind_per_s"})
    assert missing["origin_media_requests_per_s"] is None


def test_verdicts_follow_the_stated_tolerance() -> None:
    pred = {"startup_p95_s": 0.01, "live_latency_p95_s": 2.0,
            "origin_media_requests_per_s": 10.0, "chat_delivery_p99_s": 0.01,
            "transcode_lag_p95_s": 0.0}
    meas: dict[str, float | None] = {"startup_p95_s": 0.3, "live_latency_p95_s": 2.6,
                                     "origin_media_requests_per_s": 6.4,
                                     "chat_delivery_p99_s": None,
                                     "transcode_lag_p95_s": 0.51}
    rows = {r.metric: r for r in compare.compare(pred, meas)}
    assert rows["startup_p95_s"].agree  # 0.29 off, 0.3 allowed
    assert not rows["live_latency_p95_s"].agree  # 0.6 off, max(0.5, 15% of 2) allowed
    assert rows["origin_media_requests_per_s"].allowed == pytest.approx(3.5)
    assert not rows["origin_media_requests_per_s"].agree
    assert rows["chat_delivery_p99_s"].agree is None  # not measured: no verdict
    assert not rows["transcode_lag_p95_s"].agree
    assert not compare.agreed(list(rows.values()))
    nan = compare.compare({**pred, "startup_p95_s": math.nan}, {**meas, "startup_p95_s": 0.1})
    assert nan[0].agree is False  # a prediction with no value never agrees


def test_the_prediction_moves_with_the_model(baseline: Any,
                                             table: calibration.CostTable) -> None:
    """A model change the comparison must catch: the prediction follows the deployment's
    hold-back, so a model that dropped the join offset would disagree with the run."""
    sc = compare.deployment(baseline, RUN, table)
    base = compare.predicted(run_scenario(sc))
    later = copy.deepcopy(RUN)
    later["deployment"]["join_behind_s"] = 2.834
    moved = compare.predicted(run_scenario(compare.deployment(baseline, later, table)))
    assert moved["live_latency_p95_s"] - base["live_latency_p95_s"] == pytest.approx(1.5,
                                                                                      abs=0.05)
    assert 1.3 < base["live_latency_p95_s"] < 2.6  # hold-back + age + U(0, GOP) offset
    # ~one 360p cell always active (6 objects/s), the rare renditions sometimes
    assert 6.0 <= base["origin_media_requests_per_s"] <= 9.0
    assert base["transcode_lag_p95_s"] == 0.0  # one small ladder on two cores
    rows = compare.compare(moved, compare.measured(RUN))
    assert not compare.agreed(rows)


def test_report_writes_the_comparison(tmp_path: Path, baseline: Any,
                                      table: calibration.CostTable) -> None:
    rows, out = compare.report(baseline, RUN, table, tmp_path / "compare")
    data = json.loads((out / "comparison.json").read_text())
    assert data["agree"] == compare.agreed(rows)
    assert [r["metric"] for r in data["rows"]] == [t.metric for t in compare.TOLERANCES]
    assert data["model_inputs"]["costs"]["small_request_us"]["source"] == "measured here"
    text = (out / "comparison.txt").read_text()
    assert "agree when |measured - model|" in text and "origin media requests/s" in text
    assert (out / "comparison.png").stat().st_size > 1000


def test_a_run_without_the_probe_is_refused(baseline: Any) -> None:
    with pytest.raises(compare.ReportError, match="deployment"):
        compare.deployment(baseline, {k: v for k, v in RUN.items() if k != "deployment"},
                           None)
    broken = {**RUN, "deployment": {**RUN["deployment"], "errors": ["HTTPError: 503"]}}
    with pytest.raises(compare.ReportError, match="probe failed"):
        compare.deployment(baseline, broken, None)
