"""The hybrid run's origin pattern: hand-computed figures for a small scenario, agreement
with sim.delivery's own origin_rps, and how the driven loops are chosen."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from loadtest.hybrid import drive_plan
from loadtest.hybrid_pattern import allocate, origin_pattern, rung_for
from sim.delivery import Delivery
from sim.scenario import Scenario, load_scenario, scenario_from_dict

REPO = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = tomllib.loads((REPO / "scenarios" / "baseline.toml").read_text())


def small(**delivery: Any) -> Scenario:
    """12 viewers, 2 channels (Zipf s=1: 2/3 and 1/3), 2 renditions (3/4, 1/4), one CDN of
    2 edges: per (channel, rendition) 6, 2, 3 and 1 viewers."""
    raw = copy.deepcopy(BASE)
    raw["workload"].update(peak_viewers=12, channels=2, streams=2, zipf_s=1.0,
                           session_mean_s=1800, shape=[[0, 1.0], [3600, 1.0]])
    raw["workload"]["renditions"] = [
        {"name": "hi", "bitrate_kbps": 2000, "share": 0.75, "transcode_cores": 0.5},
        {"name": "lo", "bitrate_kbps": 500, "share": 0.25, "transcode_cores": 0.1}]
    raw["cdns"] = [{"name": "A", "edges": 2, "edge_egress_gbps": 10,
                    "edge_requests_per_s": 10_000, "weight": 1.0}]
    raw["delivery"].update(part_s=0.5, segment_s=2.0, **delivery)
    raw["faults"] = []
    raw.pop("variants", None)
    return scenario_from_dict(raw, source="small")


def active(*viewers: float) -> float:
    return sum(1 - math.exp(-n) for n in viewers)


def test_shield_one_loop_per_active_channel_rendition() -> None:
    p = origin_pattern(small(shield=True))
    hi, lo = p.renditions
    assert hi.viewers == pytest.approx(9.0) and lo.viewers == pytest.approx(3.0)
    assert hi.ll_loops == pytest.approx(active(6, 3))
    assert lo.ll_loops == pytest.approx(active(2, 1))
    assert p.ll_rps == pytest.approx(active(6, 3, 2, 1) * 4)  # reload + part per 0.5 s
    assert p.fetchers == 1 and p.classic_share == 0.0
    assert p.ll_rps == pytest.approx(p.model.origin_rps, rel=1e-12)  # sim.delivery's figure
    p.check_against_model()


def test_without_shield_every_edge_fetches() -> None:
    p = origin_pattern(small(shield=False))
    assert p.fetchers == 2
    assert p.loops == pytest.approx(2 * active(3, 1, 1.5, 0.5))
    assert p.ll_rps == pytest.approx(p.model.origin_rps, rel=1e-12)


def test_without_coalescing_the_model_herd_is_kept() -> None:
    p = origin_pattern(small(shield=False, coalescing=False, herd_fraction=0.5))
    per_edge = [3, 1, 1.5, 0.5]
    want = 2 * sum((1 - math.exp(-n)) + 0.5 * (n - (1 - math.exp(-n))) for n in per_edge)
    assert p.loops == pytest.approx(want)
    assert p.ll_rps == pytest.approx(p.model.origin_rps, rel=1e-12)


def test_classic_share_splits_cells_and_adds_segments() -> None:
    p = origin_pattern(small(shield=True), classic_share=0.5)
    hi, _ = p.renditions
    assert hi.ll_loops == pytest.approx(active(3, 1.5))
    assert hi.classic_loops == pytest.approx(active(3, 1.5))
    assert hi.classic_rps == pytest.approx(active(3, 1.5) * 2 / 2.0)  # reload + segment / 2 s
    with pytest.raises(ValueError, match="classic share"):
        origin_pattern(small(), classic_share=1.5)


def test_master_and_steering() -> None:
    p = origin_pattern(small())
    joins_per_s = 12 / 1800  # flat shape: replacement of ended sessions
    assert p.master_rps == pytest.approx(active(joins_per_s * 2 / 3, joins_per_s / 3))
    assert p.steering_rps == pytest.approx(12 / 5)  # TTL 1 s + held 4 s, every player
    assert p.steering_parked == pytest.approx(12 * 4 / 5)  # each held 4 s of every 5


@pytest.mark.parametrize("name", ["baseline", "surge", "cdn_outage", "spof"])
def test_shipped_scenarios_agree_with_the_model(name: str) -> None:
    sc = load_scenario(REPO / "scenarios" / f"{name}.toml")
    p = origin_pattern(sc)
    p.check_against_model()
    dv = Delivery(sc)
    assert p.ll_rps <= dv.objects_per_s * len(sc.cdns) * sc.workload.channels * len(
        sc.workload.renditions) + 1e-6  # never more loops than cells


def test_allocate_and_rungs() -> None:
    assert allocate([3.0, 1.0], 4) == [3, 1]
    assert allocate([1.0, 1.0, 1.0], 2) == [1, 1, 0]
    assert sum(allocate([0.3, 0.3, 0.4], 7)) == 7
    assert allocate([0.0, 0.0], 5) == [0, 0]
    rungs = ["source", "360p", "160p"]
    assert [rung_for(i, 4, rungs) for i in range(4)] == ["source", "360p", "360p", "160p"]
    assert rung_for(0, 1, rungs) == "source"


def test_drive_plan_caps_and_states_the_fraction() -> None:
    p = origin_pattern(load_scenario(REPO / "scenarios" / "baseline.toml"))
    plan = drive_plan(p, ["source", "360p", "160p"], max_loops=100, max_steering=7)
    assert plan["loops_driven"] == 100
    assert plan["fraction_driven"] == pytest.approx(100 / p.loops)
    assert plan["intended_req_per_s"] == pytest.approx(100 * 2 / 0.5)
    assert sum(m["loops"] for m in plan["mapping"]) == 100
    assert {m["rung"] for m in plan["mapping"]} == {"source", "360p", "160p"}
    assert plan["steering_pollers"] == 7  # capped; the fraction would want thousands
    tiny = drive_plan(origin_pattern(small()), ["source"], max_loops=100, max_steering=7)
    assert tiny["loops_driven"] == round(origin_pattern(small()).loops)  # not capped
