"""Run a Chaos Toolkit experiment (JSON) on trio and write Chaos Toolkit's journal shape.

Supported, as in Chaos Toolkit: `steady-state-hypothesis` (probes with tolerances: a
bool, number or string to equal, a list of allowed values, `{"type": "range", "range":
[lo, hi]}`, `{"type": "regex", "pattern": ...}`), checked before and after the method;
`method` (actions and probes, `pauses` before/after, `background`); `rollbacks`, which
always run (also when the hypothesis fails first or an activity raises); `configuration`
with `${name}` substitution in arguments; Python providers (`module`, `func`,
`arguments`), sync or async. Our additions live in `extensions` (Chaos Toolkit's place for
them): `{"name": "streamscale", "short": {...}, "setup": [...], "platform": "none",
"database": "postgres"}`:
configuration values for the CI-short version of a drill; activities that set the scene
(a live stream, players) before the first hypothesis check, recorded in the journal under
"setup"; "none" for a drill that starts its own service processes; the platform's
database (PostgreSQL behind a fault proxy, for database drills).

Chaos Toolkit's own `chaos run` runs the same files too (the `chaos.ctk` control hosts
the drill on a trio loop in a thread; the providers are sync-callable through it). This
runner exists so that `streamscale chaos` runs on trio in one process, with the setup and
short-version extensions, and needs no extra installed.

A method probe may carry a `tolerance` too: this runner judges it where it ran (a check
that only means something under the fault, such as "the ladder shed a rung") and records
it under `steady_states.during`; one out of tolerance makes the run deviate, as the
hypothesis after the method does. Chaos Toolkit's `chaos run` runs such a probe and
ignores its tolerance.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import platform
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger(__name__)

Journal = dict[str, Any]
Activity = dict[str, Any]
_VAR = re.compile(r"\$\{(\w+)\}")


class ExperimentError(ValueError):
    """The experiment file is not one this runner can run."""


def load_experiment(path: Path) -> dict[str, Any]:
    try:
        experiment = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExperimentError(f"{path}: {exc}") from exc
    validate(experiment, str(path))
    return dict(experiment)


def validate(experiment: Any, where: str = "experiment") -> None:
    if not isinstance(experiment, dict):
        raise ExperimentError(f"{where}: an experiment is a JSON object")
    for key in ("title", "description", "method"):
        if key not in experiment:
            raise ExperimentError(f"{where}: missing {key!r}")
    hypothesis = experiment.get("steady-state-hypothesis", {"probes": []})
    activities = [*_setup(experiment), *hypothesis.get("probes", []), *experiment["method"],
                  *experiment.get("rollbacks", [])]
    for activity in activities:
        name = activity.get("name", "?")
        if activity.get("type") not in ("action", "probe"):
            raise ExperimentError(f"{where}: {name}: type must be action or probe")
        provider = activity.get("provider", {})
        if provider.get("type") != "python" or not provider.get("module") or not provider.get(
                "func"):
            raise ExperimentError(f"{where}: {name}: only python providers (module, func)")
    for probe in hypothesis.get("probes", []):
        if "tolerance" not in probe:
            raise ExperimentError(f"{where}: {probe.get('name')}: a hypothesis probe needs a "
                                  "tolerance")


def extension(experiment: dict[str, Any]) -> dict[str, Any]:
    """The experiment's streamscale extension ({} if none)."""
    for item in experiment.get("extensions", []):
        if item.get("name") == "streamscale":
            return dict(item)
    return {}


def starts_platform(experiment: dict[str, Any]) -> bool:
    """False for drills that start their own service processes (`"platform": "none"`)."""
    return bool(extension(experiment).get("platform", "in-process") != "none")


def database(experiment: dict[str, Any]) -> str:
    """The database the drill's platform uses: "sqlite" (default) or "postgres"."""
    return str(extension(experiment).get("database", "sqlite"))


def media_settings(experiment: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The `[media]` settings (MediaConfig fields) of the platform the drill starts, from
    the extension's `media` table with `${name}` filled in from `config` ({} if none)."""
    return dict(_substitute(extension(experiment).get("media", {}), config))


def _setup(experiment: dict[str, Any]) -> list[Activity]:
    return list(extension(experiment).get("setup", []))


def configuration(experiment: dict[str, Any], *, short: bool = False,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    config = dict(experiment.get("configuration", {}))
    if short:
        config.update(extension(experiment).get("short", {}))
    config.update(overrides or {})
    return config


def _substitute(value: Any, config: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:  # "${players}" keeps the configured type
            return config[whole.group(1)]
        return _VAR.sub(lambda m: str(config[m.group(1)]), value)
    if isinstance(value, list):
        return [_substitute(v, config) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, config) for k, v in value.items()}
    return value


def within_tolerance(tolerance: Any, value: Any) -> bool:
    if isinstance(tolerance, bool) or tolerance is None:
        return value is tolerance
    if isinstance(tolerance, int | float | str):
        return bool(value == tolerance)
    if isinstance(tolerance, list):
        return value in tolerance
    if isinstance(tolerance, dict):
        kind = tolerance.get("type")
        if kind == "range":
            low, high = tolerance["range"]
            return isinstance(value, int | float) and low <= value <= high
        if kind == "regex":
            return isinstance(value, str) and re.search(tolerance["pattern"], value) is not None
    raise ExperimentError(f"unsupported tolerance {tolerance!r}")


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def run_activity(activity: Activity, config: dict[str, Any]) -> dict[str, Any]:
    """Run one activity; a record in Chaos Toolkit's journal shape (never raises)."""
    pauses = activity.get("pauses", {})
    if pauses.get("before"):
        await trio.sleep(float(_substitute(pauses["before"], config)))
    provider = activity["provider"]
    record: dict[str, Any] = {"activity": activity, "output": None, "start": _now()}
    started = time.monotonic()
    try:
        func = getattr(importlib.import_module(provider["module"]), provider["func"])
        arguments = _substitute(provider.get("arguments", {}), config)
        if "configuration" in inspect.signature(func).parameters:
            arguments = {**arguments, "configuration": config}
        result = func(**arguments)
        if inspect.isawaitable(result):
            result = await result
        record.update(output=result, status="succeeded")
    except Exception as exc:  # an activity's failure is recorded, as Chaos Toolkit does
        log.warning("activity %s failed: %r", activity.get("name"), exc)
        record.update(status="failed", exception=[f"{type(exc).__name__}: {exc}"])
    record.update(end=_now(), duration=round(time.monotonic() - started, 3))
    log.info("%s %s -> %s %r", activity["type"], activity.get("name"), record["status"],
             record["output"])
    if pauses.get("after"):
        await trio.sleep(float(_substitute(pauses["after"], config)))
    return record


async def _hypothesis(experiment: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    probes = []
    met = True
    for probe in experiment.get("steady-state-hypothesis", {}).get("probes", []):
        record = _judged(probe, await run_activity(probe, config), config)
        met = met and record["tolerance_met"]
        probes.append(record)
        if not met:
            break  # as Chaos Toolkit: the first probe out of tolerance ends the check
    return {"steady_state_met": met, "probes": probes}


def _judged(probe: Activity, record: dict[str, Any], config: dict[str, Any]
            ) -> dict[str, Any]:
    tolerance = _substitute(probe["tolerance"], config)
    record["tolerance_met"] = record["status"] == "succeeded" and within_tolerance(
        tolerance, record["output"])
    return record


async def run_experiment(experiment: dict[str, Any], *, config: dict[str, Any] | None = None
                         ) -> Journal:
    """Hypothesis, method, hypothesis again, rollbacks (always). Returns the journal."""
    validate(experiment)
    config = configuration(experiment) if config is None else config
    journal: Journal = {
        "chaoslib-version": None, "platform": platform.platform(), "node": platform.node(),
        "runner": "streamscale chaos.runner", "experiment": experiment,
        "configuration": config, "start": _now(), "status": None, "deviated": False,
        "steady_states": {"before": None, "after": None, "during": []},
        "setup": [], "run": [], "rollbacks": [],
    }
    started = time.monotonic()
    try:
        for activity in _setup(experiment):
            record = await run_activity(activity, config)
            journal["setup"].append(record)
            if record["status"] != "succeeded":
                journal["status"] = "aborted"
                return journal
        before = journal["steady_states"]["before"] = await _hypothesis(experiment, config)
        if not before["steady_state_met"]:
            journal["status"] = "failed"
            return journal
        async with trio.open_nursery() as background:
            for activity in experiment["method"]:
                if activity.get("background"):
                    pending: dict[str, Any] = {}
                    journal["run"].append(pending)
                    background.start_soon(_fill, pending, activity, config)
                else:
                    record = await run_activity(activity, config)
                    journal["run"].append(record)
                    if activity["type"] == "probe" and "tolerance" in activity:
                        _judged(activity, record, config)
                        journal["steady_states"]["during"].append(
                            {"steady_state_met": record["tolerance_met"], "probes": [record]})
        after = journal["steady_states"]["after"] = await _hypothesis(experiment, config)
        during_met = all(d["steady_state_met"] for d in journal["steady_states"]["during"])
        journal["deviated"] = not (after["steady_state_met"] and during_met)
        journal["status"] = "failed" if journal["deviated"] else "completed"
        return journal
    except BaseException:
        journal["status"] = "interrupted"
        raise
    finally:
        with trio.CancelScope(shield=True):  # rollbacks always run
            for activity in experiment.get("rollbacks", []):
                journal["rollbacks"].append(await run_activity(activity, config))
        journal["end"] = _now()
        journal["duration"] = round(time.monotonic() - started, 3)


async def _fill(record: dict[str, Any], activity: Activity, config: dict[str, Any]) -> None:
    record.update(await run_activity(activity, config))


def summary(journal: Journal) -> str:
    """A few lines for a person: the verdict, the hypothesis probes, what failed."""
    lines = [f"{journal['experiment']['title']}: {journal['status']} "
             f"(deviated: {journal['deviated']}, {journal['duration']} s)"]
    states = journal["steady_states"]
    during = [p for state in states.get("during") or [] for p in state["probes"]]
    phases = [("before", states["before"]), ("during the method", during and {
        "steady_state_met": all(p["tolerance_met"] for p in during), "probes": during}),
              ("after", states["after"])]
    for phase, state in phases:
        if not state:
            continue
        lines.append(f"  steady state {phase}: {'met' if state['steady_state_met'] else 'NOT met'}")
        for probe in state["probes"]:
            mark = "ok " if probe["tolerance_met"] else "OUT"
            lines.append(f"    {mark} {probe['activity']['name']}: {probe['output']!r}")
    for record in journal["setup"] + journal["run"] + journal["rollbacks"]:
        if record.get("status") == "failed":
            lines.append(f"  failed: {record['activity']['name']}: {record['exception']}")
    return "\n".join(lines)


def write_journal(journal: Journal, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "journal.json"
    path.write_text(json.dumps(journal, indent=2, default=str))
    (out_dir / "summary.txt").write_text(summary(journal) + "\n")
    return path
