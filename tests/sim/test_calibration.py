"""The cost table from `streamscale calibrate`: its file format, its errors, that the model
uses what it holds, and one real (quick, in-process) calibration."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from sim import calibration as cal
from sim.model import Model
from sim.runner import with_overrides
from sim.scenario import Costs, Scenario, load_scenario
from streamscale import cli

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.toml"


def table(**values: float) -> cal.CostTable:
    return cal.CostTable(machine=cal.Machine.here(), command="test", measurements={
        name: cal.measurement(name, [v * 0.98, v, v * 1.01], method="test rounds",
                              operations=300, measured_at="2026-12-03T16:00:00Z")
        for name, v in values.items()})


def small_baseline() -> Scenario:
    sc = with_overrides(load_scenario(BASELINE), duration_s=300.0, replications=1)
    return dataclasses.replace(sc, workload=dataclasses.replace(
        sc.workload, channels=200, probe_viewers=500))


def test_table_round_trips_through_its_file(tmp_path: Path) -> None:
    t = table(small_request_us=61.5, moderate_us=87.0, copy_gbytes_per_s=4.8)
    path = tmp_path / "calibration" / "costs.json"
    cal.save(t, path)
    again = cal.load(path)
    assert again == t
    m = again.measurements["small_request_us"]
    assert (m.value, m.unit, m.operations) == (61.5, "us/request", 300)
    assert m.spread == pytest.approx((61.5 * 1.01 - 61.5 * 0.98) / 61.5, rel=1e-3)
    data = json.loads(path.read_text())
    assert data["format"] == cal.FORMAT
    assert set(data["machine"]) == {"cpu_model", "cores", "python", "system", "hostname_sha256"}


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(cal.CalibrationError, match=r"no such cost table.*streamscale calibrate"):
        cal.load(tmp_path / "nope.json")


def _entry() -> dict[str, Any]:
    return {"value": 10.0, "unit": "us/message", "method": "m", "samples": [10.0],
            "operations": 5, "measured_at": "2026-12-03T16:00:00Z"}


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "other/9"}, "format: expected"),
    ({"costs": []}, "costs: must be an object"),
    ({"costs": {"moderate_ms": _entry()}}, "moderate_ms: not a cost parameter"),
    ({"costs": {"moderate_us": {**_entry(), "unit": "ms"}}}, "unit 'ms'"),
    ({"costs": {"moderate_us": {**_entry(), "value": -1}}}, "positive number"),
    ({"costs": {"moderate_us": {**_entry(), "value": "NaN"}}}, "positive number"),
    ({"costs": {"moderate_us": {**_entry(), "samples": []}}}, "samples"),
    ({"costs": {"moderate_us": {**_entry(), "measured_at": "yesterday"}}}, "measured_at"),
    ({"costs": {"moderate_us": {"value": 10.0}}}, "missing or malformed"),
    ({"machine": {"cores": 2}}, "machine: missing or malformed"),
])
def test_invalid_tables_name_the_key(tmp_path: Path, change: dict[str, Any],
                                     message: str) -> None:
    data = {**cal.to_json(table(moderate_us=50.0)), **change}
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(data))
    with pytest.raises(cal.CalibrationError, match=message) as info:
        cal.load(path)
    assert str(path) in str(info.value)


def test_not_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    path.write_text("{not json")
    with pytest.raises(cal.CalibrationError, match="not valid JSON"):
        cal.load(path)


def test_measured_costs_replace_defaults_but_not_a_scenarios_own() -> None:
    sc = load_scenario(ROOT / "scenarios" / "surge.toml")
    what_if = dataclasses.replace(sc, costs=dataclasses.replace(sc.costs, moderate_us=999.0))
    t = table(moderate_us=87.0, api_request_us=900.0)
    calibrated = cal.apply_costs(what_if, t)
    assert calibrated.costs.api_request_us == 900.0
    assert calibrated.costs.moderate_us == 999.0  # the scenario's what-if stays
    assert calibrated.costs.small_request_us == Costs().small_request_us  # not measured
    assert sc.variants, "surge has fix variants to carry the costs into"
    assert all(v.scenario.costs.api_request_us == 900.0 for v in calibrated.variants)
    prov = cal.cost_provenance(calibrated, t)
    assert prov["api_request_us"]["source"] == "measured here"
    assert prov["api_request_us"]["measured_at"] == "2026-12-03T16:00:00Z"
    assert cal.Machine.here().hostname_sha256 in prov["api_request_us"]["machine"]
    assert prov["moderate_us"]["source"] == "scenario file (what-if)"
    assert prov["small_request_us"]["source"].startswith("peer figure")
    assert prov["bus_publish_us"]["source"].startswith("assumed")
    assert "measured" not in " ".join(r["source"] for r in cal.cost_provenance(sc, None).values())


def test_the_model_runs_on_calibrated_costs() -> None:
    sc = small_baseline()
    base = Model(sc, 1).run().summary
    slow_moderation = Model(cal.apply_costs(sc, table(moderate_us=50_000.0)), 1).run().summary
    slow_api = Model(cal.apply_costs(sc, table(api_request_us=18_000.0)), 1).run().summary
    assert slow_moderation["chat_delivery_p99_s"] > base["chat_delivery_p99_s"] + 0.04
    assert slow_api["startup_p95_s"] > base["startup_p95_s"]


def test_sim_reads_a_cost_table_and_says_where_costs_come_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "costs.json"
    cal.save(table(moderate_us=87.0), path)
    argv = ["sim", str(BASELINE), "--duration-s", "60", "--replications", "1",
            "--no-variants", "--out", str(tmp_path / "out"), "--costs", str(path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "moderate_us" in out and "measured here 2026-12-03T16:00:00Z" in out
    report = tmp_path / "out" / "baseline"
    prov = json.loads((report / "result.json").read_text())["costs"]
    assert "measured here 2026-12-03T16:00:00Z" in (report / "index.html").read_text()
    assert prov["moderate_us"]["value"] == 87.0
    assert prov["api_request_us"]["source"].startswith("peer figure")
    assert cli.main([*argv[:-1], str(tmp_path / "missing.json")]) == 2
    assert "no such cost table" in capsys.readouterr().err


def test_committed_reference_table_loads_and_covers_every_measurer() -> None:
    t = cal.load(cal.REFERENCE_PATH)
    assert set(t.measurements) >= {"small_request_us", "api_request_us", "copy_gbytes_per_s",
                                   "chat_delivery_us", "bus_publish_us", "moderate_us"}


def test_quick_calibration_measures_moderation_here(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "costs.json"
    cal.save(table(small_request_us=61.5), out)  # a partial run keeps what was there
    assert cli.main(["calibrate", "--quick", "--only", "moderate_us", "--out", str(out)]) == 0
    assert "moderate_us" in capsys.readouterr().out
    t = cal.load(out)
    m = t.measurements["moderate_us"]
    assert 0 < m.value < 100_000  # us per message: positive and not absurd
    assert m.operations >= 300 and len(m.samples) >= 2
    assert "toxicity model" in m.method and m.measured_at.endswith("Z")
    assert t.machine == cal.Machine.here()
    assert t.measurements["small_request_us"].value == 61.5
    assert cli.main(["calibrate", "--only", "nothing"]) == 2
    assert "unknown parameter 'nothing'" in capsys.readouterr().err


def test_a_parameter_that_cannot_be_measured_is_said_and_the_rest_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCALE_CALIBRATE_REDIS", "redis://127.0.0.1:1/0")  # nobody there
    out = tmp_path / "costs.json"
    cal.save(table(bus_publish_us=400.0), out)
    assert cli.main(["calibrate", "--quick", "--only", "bus_publish_us", "--out",
                     str(out)]) == 1
    err = capsys.readouterr().err
    assert "bus_publish_us" in err and "not measured" in err and "nothing measured" in err
    assert cal.load(out).measurements["bus_publish_us"].value == 400.0  # left as it was
