"""The verdicts, recomputed from the model code, and the committed reference reports.

`test_model_breaks_what_it_should_and_fixes_pass` runs every shipped scenario and its fix
variants through the model at a small scale (50 channels, 300 probe viewers, one
replication, the full timeline) and checks what the README says: each scenario as given
breaks the SLOs it is about; its fix passes all. Both on the calibrated cost table, as
`streamscale sim` runs by default. A model change that moves a verdict fails
here, not only in a stale report. The reports are then checked to be current and to say
the same. Regenerate a stale one with `streamscale sim scenarios/<name>.toml --out reports`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from sim import calibration
from sim.report import scenario_digest
from sim.runner import run_all, with_overrides
from sim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
BREAKS = {  # scenario -> SLOs it exists to break (scenarios/README.md, the table)
    "baseline": set(),
    "surge": {"startup_p95_s", "rebuffer_ratio", "live_latency_p95_s"},
    "cdn_outage": {"rebuffer_ratio", "viewer_error_rate"},
    "chat_flood": {"moderation_wait_p95_s"},
    "media_overload": {"rebuffer_ratio", "live_latency_p95_s"},
    "db_hotspot": {"startup_p95_s"},
    "spof": {"viewer_error_rate", "chat_loss_rate"},
    "moderation_backlog": {"moderation_wait_p95_s"},
}
MAX_REPORTS_BYTES = 5_000_000
SMALL_CHANNELS = 50


def _shrink(sc: Scenario) -> Scenario:
    w = dataclasses.replace(sc.workload, channels=SMALL_CHANNELS, probe_viewers=300)
    return dataclasses.replace(sc, workload=w)


def as_run(name: str) -> Scenario:
    """The scenario as `streamscale sim` runs it by default: on the calibrated costs."""
    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    return calibration.apply_costs(sc, calibration.load(calibration.REFERENCE_PATH))


def small_with_variants(name: str) -> Scenario:
    sc = with_overrides(as_run(name), replications=1)
    return dataclasses.replace(_shrink(sc), variants=tuple(
        dataclasses.replace(v, scenario=_shrink(v.scenario)) for v in sc.variants))


def _report(name: str) -> dict[str, Any]:
    path = REPORTS / name / "result.json"
    assert path.exists(), f"no reference report: streamscale sim scenarios/{name}.toml"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_every_scenario_file_is_covered() -> None:
    assert {p.stem for p in (ROOT / "scenarios").glob("*.toml")} == set(BREAKS)


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_report_is_current(name: str) -> None:
    data = _report(name)
    sc = as_run(name)
    assert data["scenario"] == name
    assert data["scenario_sha256"] == scenario_digest(sc), (
        f"reports/{name} was made from another version of the scenario (or with overrides)")
    assert [r["name"] for r in data["runs"]] == ["as given", *(v.name for v in sc.variants)]
    d = REPORTS / name
    page = (d / "index.html").read_text()
    for png in ("load.png", "slos.png", "capacity.png"):
        assert (d / png).exists() and f"src='{png}'" in page


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_model_breaks_what_it_should_and_fixes_pass(name: str) -> None:
    given, *fixes = run_all(small_with_variants(name))
    failing = {v.metric for v in given.verdicts if not v.passed}
    assert BREAKS[name] <= failing, f"{name} as given passes {BREAKS[name] - failing}"
    if not BREAKS[name]:
        assert given.passed, [v for v in given.verdicts if not v.passed]
    for fix in fixes:
        missed = [(v.metric, v.reason) for v in fix.verdicts if not v.passed]
        assert fix.passed and not missed, f"{name}+{fix.name} misses {missed}"


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_report_breaks_what_it_should_and_fixes_pass(name: str) -> None:
    given, *fixes = _report(name)["runs"]
    failing = {v["metric"] for v in given["verdicts"] if not v["passed"]}
    assert BREAKS[name] <= failing, f"{name} as given passes {BREAKS[name] - failing}"
    if not BREAKS[name]:
        assert given["passed"]
    for fix in fixes:
        missed = [v["metric"] for v in fix["verdicts"] if not v["passed"]]
        assert fix["passed"] and not missed, f"{name}+{fix['name']} misses {missed}"


def test_reports_stay_small() -> None:
    # the model's own files (reports/<scenario>/*); load and chaos runs keep theirs in
    # subdirectories with their own budgets
    size = sum(p.stat().st_size for name in BREAKS for p in (REPORTS / name).iterdir()
               if p.is_file())
    assert size < MAX_REPORTS_BYTES, f"the model's reports are {size / 1e6:.1f} MB"
