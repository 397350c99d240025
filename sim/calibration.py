"""The cost table measured on the platform itself (`streamscale calibrate`), and how the model
reads it.

`Costs` in the scenario schema holds figures from peer servers and assumptions. A cost
table (JSON, `reports/calibration/costs.json` by default, a reference copy committed) holds
what `streamscale calibrate` measured here: per cost parameter the value, its unit, how it
was measured (method, per-round samples, spread, operations counted), when (UTC), and on
which machine. `apply_costs` puts the measured values into a scenario (and its fix
variants) wherever the scenario file left the schema default; `cost_provenance` says, per
parameter, whether the value the model used was measured here, stated by the scenario file,
or assumed. "Measured" in reports means measured here, by this file's method.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import socket
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim.scenario import Costs, Scenario

FORMAT = "streamscale-costs/1"
REFERENCE_PATH = Path(__file__).resolve().parents[1] / "reports" / "calibration" / "costs.json"
DEFAULT_OUT = Path("reports/calibration/costs.json")
UNITS = {  # the unit each Costs field is in; a table must use the same
    "small_request_us": "us/request",
    "api_request_us": "us/request",
    "copy_gbytes_per_s": "GB/s per core",
    "chat_delivery_us": "us/delivery",
    "chat_encode_us": "us/frame",
    "bus_publish_us": "us/message",
    "moderate_us": "us/message",
}
ASSUMED_FROM = {  # where each schema default comes from (none of them was measured here)
    "small_request_us": "peer figure: a bare h11-on-trio server, 0.19x nginx (DESIGN.md, 2026-11)",
    "api_request_us": "peer figure: bare hypercorn on trio (DESIGN.md, 2026-11)",
    "copy_gbytes_per_s": "peer figure: 1 MB objects near loopback copy speed (DESIGN.md)",
    "chat_delivery_us": "peer figure: Node ws per delivery, the fan-out listener's target",
    "chat_encode_us": "assumed: encode one batch frame per room per gateway",
    "bus_publish_us": "assumed: Redis pub/sub per message per gateway",
    "moderate_us": "assumed: regex + banned words per message",
}


class CalibrationError(ValueError):
    """A cost table is missing, unreadable or malformed."""


@dataclass(frozen=True, kw_only=True)
class Machine:
    cpu_model: str
    cores: int
    python: str
    system: str
    hostname_sha256: str  # first 16 hex digits: tells machines apart, names none

    @classmethod
    def here(cls) -> Machine:
        model = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16]
        return cls(cpu_model=model, cores=os.cpu_count() or 1,
                   python=platform.python_version(), system=platform.platform(),
                   hostname_sha256=host)


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One cost parameter as measured: `value` is the median of the per-round `samples`."""

    parameter: str
    value: float
    unit: str
    method: str
    samples: tuple[float, ...]
    operations: int  # requests, deliveries or messages counted over all rounds
    measured_at: str  # ISO 8601, UTC

    @property
    def spread(self) -> float:
        """(max - min) / median of the rounds; 0 for a single round."""
        return (max(self.samples) - min(self.samples)) / self.value if self.samples else 0.0


def measurement(parameter: str, samples: list[float], *, method: str, operations: int,
                measured_at: str | None = None) -> Measurement:
    """A Measurement from per-round samples (median), checked like a loaded one."""
    if not samples:
        raise CalibrationError(f"{parameter}: no samples")
    m = Measurement(parameter=parameter, value=_sig(statistics.median(samples)),
                    unit=UNITS.get(parameter, "?"), method=method,
                    samples=tuple(_sig(s) for s in samples), operations=operations,
                    measured_at=measured_at or utc_now())
    _check(m, "<new>")
    return m


@dataclass(frozen=True, kw_only=True)
class CostTable:
    machine: Machine
    measurements: dict[str, Measurement]
    command: str = ""

    def merged(self, newer: CostTable) -> CostTable:
        """This table with `newer`'s parameters replacing its own (machine from `newer`)."""
        command = f"{self.command}; then {newer.command}" if self.command else newer.command
        return CostTable(machine=newer.machine, command=command,
                         measurements={**self.measurements, **newer.measurements})


def _sig(x: float) -> float:
    return float(f"{x:.5g}")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(table: CostTable) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "command": table.command,
        "machine": dataclasses.asdict(table.machine),
        "costs": {name: {"value": m.value, "unit": m.unit, "method": m.method,
                         "samples": list(m.samples), "spread": round(m.spread, 4),
                         "operations": m.operations, "measured_at": m.measured_at}
                  for name, m in sorted(table.measurements.items())},
    }


def from_json(data: Any, source: str = "<json>") -> CostTable:
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: not a JSON object")
    if data.get("format") != FORMAT:
        raise CalibrationError(f"{source}: format: expected {FORMAT!r}, got "
                               f"{data.get('format')!r}")
    try:
        machine = Machine(**data["machine"])
    except (KeyError, TypeError) as exc:
        raise CalibrationError(f"{source}: machine: missing or malformed ({exc})") from exc
    costs = data.get("costs")
    if not isinstance(costs, dict):
        raise CalibrationError(f"{source}: costs: must be an object")
    out: dict[str, Measurement] = {}
    for name, entry in costs.items():
        if not isinstance(entry, dict):
            raise CalibrationError(f"{source}: costs.{name}: must be an object")
        try:
            m = Measurement(parameter=name, value=float(entry["value"]), unit=entry["unit"],
                            method=entry["method"],
                            samples=tuple(float(s) for s in entry["samples"]),
                            operations=int(entry["operations"]),
                            measured_at=entry["measured_at"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{source}: costs.{name}: missing or malformed "
                                   f"field ({exc})") from exc
        _check(m, source)
        out[name] = m
    return CostTable(machine=machine, measurements=out, command=str(data.get("command", "")))


def _check(m: Measurement, source: str) -> None:
    where = f"{source}: costs.{m.parameter}"
    if m.parameter not in UNITS:
        raise CalibrationError(f"{where}: not a cost parameter (one of {sorted(UNITS)})")
    if m.unit != UNITS[m.parameter]:
        raise CalibrationError(f"{where}: unit {m.unit!r}, the model needs {UNITS[m.parameter]!r}")
    if not (math.isfinite(m.value) and m.value > 0):
        raise CalibrationError(f"{where}: value must be a positive number, got {m.value}")
    if not m.samples or not all(math.isfinite(s) and s > 0 for s in m.samples):
        raise CalibrationError(f"{where}: samples must be positive numbers")
    if m.operations <= 0:
        raise CalibrationError(f"{where}: operations must be positive")
    try:
        datetime.strptime(m.measured_at, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{where}: measured_at must be UTC like "
                               f"2026-12-03T16:20:00Z, got {m.measured_at!r}") from exc


def save(table: CostTable, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(table), indent=1) + "\n", encoding="utf-8")


def load(path: str | Path) -> CostTable:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CalibrationError(f"{p}: no such cost table (run `streamscale calibrate`)") from exc
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{p}: not valid JSON: {exc}") from exc
    return from_json(data, str(p))


_APPLIED: dict[Costs, CostTable] = {}  # costs made by apply_costs -> the table they came from


def _calibrated(costs: Costs, table: CostTable) -> Costs:
    default = Costs()
    changes = {name: m.value for name, m in table.measurements.items()
               if hasattr(default, name) and getattr(costs, name) == getattr(default, name)}
    out = dataclasses.replace(costs, **changes)
    if changes:
        _APPLIED[out] = table
    return out


def applied_table(sc: Scenario) -> CostTable | None:
    """The table `apply_costs` took `sc`'s costs from (None: it did not), for reports."""
    return _APPLIED.get(sc.costs)


def apply_costs(sc: Scenario, table: CostTable) -> Scenario:
    """`sc` (and its fix variants) with the measured costs wherever the scenario file kept
    the schema default; a cost the file states itself stays (it is a what-if)."""
    variants = tuple(dataclasses.replace(v, scenario=apply_costs(v.scenario, table))
                     for v in sc.variants)
    return dataclasses.replace(sc, costs=_calibrated(sc.costs, table), variants=variants)


def cost_provenance(sc: Scenario, table: CostTable | None = None) -> dict[str, dict[str, Any]]:
    """Per cost parameter: the value the model uses and where it comes from (`table`: the
    cost table applied; by default the one `apply_costs` used for these costs, if any)."""
    table = table or applied_table(sc)
    default = Costs()
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(Costs):
        value = getattr(sc.costs, f.name)
        m = table.measurements.get(f.name) if table else None
        row: dict[str, Any] = {"value": value, "unit": UNITS.get(f.name, "?")}
        if m is not None and value == m.value:
            assert table is not None
            row.update(source="measured here", measured_at=m.measured_at,
                       machine=f"{table.machine.cpu_model}, {table.machine.cores} cores, "
                               f"host {table.machine.hostname_sha256}",
                       method=m.method, spread=round(m.spread, 4))
        elif value != getattr(default, f.name):
            row.update(source="scenario file (what-if)")
        else:
            row.update(source=ASSUMED_FROM.get(f.name, "assumed (schema default)"))
        out[f.name] = row
    return out


def format_provenance(prov: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'cost parameter':20s} {'value':>9s} {'unit':14s} source"]
    for name, row in prov.items():
        where = row["source"]
        if where == "measured here":
            where += f" {row['measured_at']} ({row['machine']})"
        lines.append(f"{name:20s} {row['value']:9.4g} {row['unit']:14s} {where}")
    return "\n".join(lines)
