"""The experiment runner: Chaos Toolkit's format in, Chaos Toolkit's journal shape out;
tolerances; rollbacks that always run; the hypothesis decides the verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel

from chaos import cli as chaos_cli
from chaos.runner import (
    ExperimentError,
    configuration,
    load_experiment,
    media_settings,
    run_experiment,
    summary,
    validate,
    within_tolerance,
    write_journal,
)

CALLS: list[str] = []
LEVEL = {"value": 10}


def probe_level() -> int:
    CALLS.append("probe")
    return LEVEL["value"]


async def set_level(value: int) -> int:
    await trio.lowlevel.checkpoint()
    CALLS.append(f"set {value}")
    LEVEL["value"] = value
    return value


def explode() -> None:
    CALLS.append("explode")
    raise RuntimeError("boom")


def echo_config(configuration: dict[str, Any]) -> Any:
    return configuration["knob"]


def _activity(kind: str, name: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": kind, "name": name, "provider": {
        "type": "python", "module": __name__, "func": func, "arguments": arguments}}


def _experiment(method: list[dict[str, Any]], low: int = 5) -> dict[str, Any]:
    return {
        "title": "t", "description": "d",
        "configuration": {"low": low, "restore": 10},
        "steady-state-hypothesis": {"title": "level high", "probes": [
            {**_activity("probe", "level", "probe_level"),
             "tolerance": {"type": "range", "range": ["${low}", 100]}}]},
        "method": method,
        "rollbacks": [_activity("action", "restore", "set_level", value="${restore}")],
    }


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    LEVEL["value"] = 10


async def test_completed_when_the_hypothesis_holds_after_the_method() -> None:
    journal = await run_experiment(_experiment([_activity("action", "dip", "set_level",
                                                          value=7)]))
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert CALLS == ["probe", "set 7", "probe", "set 10"]
    run = journal["run"][0]
    assert run["status"] == "succeeded" and run["output"] == 7
    assert {"start", "end", "duration", "activity"} <= run.keys()
    assert journal["steady_states"]["after"]["probes"][0]["tolerance_met"] is True
    assert journal["rollbacks"][0]["output"] == 10  # ${restore} kept its type


async def test_deviated_when_the_method_breaks_the_hypothesis_and_rollbacks_run() -> None:
    journal = await run_experiment(_experiment([
        _activity("action", "crash", "set_level", value=1),
        _activity("action", "explode", "explode")]))
    assert journal["status"] == "failed" and journal["deviated"] is True
    assert journal["run"][1]["status"] == "failed"
    assert journal["run"][1]["exception"] == ["RuntimeError: boom"]
    assert CALLS[-1] == "set 10" and LEVEL["value"] == 10


async def test_no_method_when_the_steady_state_is_not_met_first() -> None:
    LEVEL["value"] = 0
    journal = await run_experiment(_experiment([_activity("action", "x", "set_level",
                                                          value=50)]))
    assert journal["status"] == "failed" and journal["run"] == []
    assert journal["steady_states"]["after"] is None
    assert CALLS == ["probe", "set 10"]  # the rollback still ran


async def test_rollbacks_run_when_the_run_is_cancelled() -> None:
    slow = {**_activity("action", "slow", "set_level", value=3), "pauses": {"after": 60}}
    with trio.move_on_after(0.5):  # a person pressing Ctrl-C during the method
        await run_experiment(_experiment([slow]))
    assert CALLS[-1] == "set 10"


async def test_background_activities_and_configuration_injection() -> None:
    experiment = _experiment([{**_activity("action", "bg", "set_level", value=20),
                               "background": True},
                              _activity("probe", "knob", "echo_config")])
    experiment["configuration"]["knob"] = "turned"
    journal = await run_experiment(experiment)
    assert journal["run"][0]["output"] == 20 and journal["run"][1]["output"] == "turned"


async def test_a_method_probe_with_a_tolerance_is_judged_during_the_method() -> None:
    """A check that only means something under the fault: out of tolerance, the run
    deviates although the hypothesis holds after; recorded under steady_states.during."""
    def judged(level_during: int) -> dict[str, Any]:
        return _experiment([
            _activity("action", "dip", "set_level", value=level_during),
            {**_activity("probe", "level-during", "probe_level"),
             "tolerance": {"type": "range", "range": [0, 8]}},
            _activity("probe", "untested", "probe_level"),  # no tolerance: only recorded
            _activity("action", "back", "set_level", value=10)])

    journal = await run_experiment(judged(7))
    assert journal["status"] == "completed", journal
    [during] = journal["steady_states"]["during"]
    assert during["steady_state_met"] is True and during["probes"][0]["output"] == 7
    assert "tolerance_met" not in journal["run"][2]
    journal = await run_experiment(judged(9))
    assert journal["status"] == "failed" and journal["deviated"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    assert journal["steady_states"]["during"][0]["probes"][0]["tolerance_met"] is False
    assert "steady state during the method: NOT met" in summary(journal)


def test_media_settings_fill_in_the_configuration() -> None:
    experiment = {"configuration": {"cap": 4.0}, "extensions": [{
        "name": "streamscale", "short": {"cap": 3.0},
        "media": {"transcode_capacity": "${cap}", "ladder": "source,720p"}}]}
    assert media_settings(experiment, configuration(experiment, short=True)) == {
        "transcode_capacity": 3.0, "ladder": "source,720p"}
    assert media_settings({"extensions": []}, {}) == {}


def test_tolerances() -> None:
    assert within_tolerance(True, True) and not within_tolerance(True, 1)
    assert within_tolerance(3, 3) and not within_tolerance(3, 4)
    assert within_tolerance("live", "live") and within_tolerance([1, 2], 2)
    assert within_tolerance({"type": "range", "range": [0, 0.05]}, 0.01)
    assert not within_tolerance({"type": "range", "range": [0, 0.05]}, "0.01")
    assert within_tolerance({"type": "regex", "pattern": "^refused"}, "refused: no")
    with pytest.raises(ExperimentError, match="unsupported"):
        within_tolerance({"type": "jsonpath"}, 1)


def test_bad_experiments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="missing 'method'"):
        validate({"title": "t", "description": "d"})
    with pytest.raises(ExperimentError, match="only python providers"):
        validate({"title": "t", "description": "d", "method": [
            {"type": "action", "name": "a", "provider": {"type": "http", "url": "x"}}]})
    with pytest.raises(ExperimentError, match="needs a tolerance"):
        validate({"title": "t", "description": "d", "method": [],
                  "steady-state-hypothesis": {"probes": [_activity("probe", "p", "f")]}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ExperimentError, match=r"bad\.json"):
        load_experiment(bad)


def test_shipped_drills_load_and_have_short_versions() -> None:
    for name in chaos_cli.available():
        experiment = load_experiment(chaos_cli.resolve(name))
        full, short = configuration(experiment), configuration(experiment, short=True)
        assert short != full, name
        assert experiment["rollbacks"], name
    assert {"cdn_outage", "security_breach"} <= set(chaos_cli.available())


async def test_journal_and_summary_are_written(tmp_path: Path) -> None:
    journal = await run_experiment(_experiment([]))
    path = write_journal(journal, tmp_path / "x" / "chaos")
    assert json.loads(path.read_text())["status"] == "completed"
    assert "steady state after: met" in (path.parent / "summary.txt").read_text()


def test_cli_refuses_unknown_drills_and_half_targets(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert chaos_cli.main(["no_such_drill"]) == 2
    assert "drills: cdn_outage" in capsys.readouterr().err
    assert chaos_cli.main(["cdn_outage", "--target", "http://127.0.0.1:1"]) == 2
    assert "--target needs --rtmp" in capsys.readouterr().err
    assert chaos_cli.main(["cdn_outage", "--var", "oops"]) == 2


def test_shipped_drills_are_valid_chaos_toolkit_experiments() -> None:
    from chaoslib.experiment import ensure_experiment_is_valid  # type: ignore[import-untyped]

    for name in chaos_cli.available():
        ensure_experiment_is_valid(load_experiment(chaos_cli.resolve(name)))
