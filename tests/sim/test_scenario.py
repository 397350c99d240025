"""The scenario loader: every shipped file loads; bad files fail naming file, key, reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.scenario import ScenarioError, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED = ["baseline", "surge", "cdn_outage", "chat_flood", "media_overload", "db_hotspot",
           "spof", "moderation_backlog"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load(name: str) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.toml")
    assert sc.name == name
    assert sc.workload.peak_viewers >= 1_000_000
    if name != "baseline":
        assert sc.variants, "every failure scenario ships a fix variant"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(f'extends = "{SCENARIOS / "baseline.toml"}"\n{text}')
    return p


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    p = _write(tmp_path, "[workload]\npeak_veiwers = 5\n")
    with pytest.raises(ScenarioError, match=r"s\.toml: workload\.peak_veiwers: unknown key"):
        load_scenario(p)


@pytest.mark.parametrize(("text", "match"), [
    ("[delivery]\nfailover = 'dns'\n", r"delivery\.failover: must be one of"),
    ("[workload]\nchannels = 'many'\n", r"workload\.channels: must be an integer"),
    ("[origin]\negress_gbps = -1\n", r"origin\.egress_gbps: must not be negative"),
    ("[[cdns]]\nname='C'\nedges=1\nedge_egress_gbps=1\nedge_requests_per_s=1\nweight=0.5\n",
     r"cdns: weights must sum to 1"),
    ("[[faults]]\nkind='cdn_down'\ntarget='Z'\nat_s=1\nduration_s=1\n",
     r"faults\[0\]\.target: must name a CDN"),
    ("[[faults]]\nkind='meteor'\nat_s=1\nduration_s=1\n", r"faults\[0\]\.kind: must be one of"),
])
def test_bad_values(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        load_scenario(_write(tmp_path, text))


def test_variant_overrides_apply_and_are_validated(tmp_path: Path) -> None:
    sc = load_scenario(SCENARIOS / "cdn_outage.toml")
    fix = sc.variants[0].scenario
    assert fix.delivery.failover == "cdn"
    assert fix.cdns[1].edges == 24
    assert sc.delivery.failover == "origin"
    assert sc.cdns[1].edges == 16
    bad = _write(tmp_path, "[[variants]]\nname='x'\nset={'chat.gateways'='ten'}\n")
    with pytest.raises(ScenarioError, match=r"chat\.gateways: must be an integer"):
        load_scenario(bad)


def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.toml"
    p.write_text("name = \n")
    with pytest.raises(ScenarioError, match=r"broken\.toml"):
        load_scenario(p)
