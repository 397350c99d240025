"""Scenario files: one TOML file drives the capacity model, the load run and the chaos drill.

`load_scenario(path)` reads and validates a file (and its fix variants) into a frozen
`Scenario`; anything wrong raises `ScenarioError` naming the file, the dotted key and the
reason. The schema (one dataclass per TOML table) is in `_schema`, the reading in `_loader`;
scenarios/README.md documents every key (a test keeps the two in step).
"""

from sim.scenario._loader import ScenarioError, load_scenario, scenario_from_dict
from sim.scenario._schema import (
    Api,
    Cdn,
    Chat,
    Costs,
    Database,
    Delivery,
    Estimate,
    Fault,
    FaultKind,
    Origin,
    Rendition,
    Run,
    Scenario,
    Slo,
    Transcode,
    Variant,
    Workload,
)

__all__ = [
    "Api", "Cdn", "Chat", "Costs", "Database", "Delivery", "Estimate", "Fault", "FaultKind",
    "Origin", "Rendition", "Run", "Scenario", "ScenarioError", "Slo", "Transcode", "Variant",
    "Workload", "load_scenario", "scenario_from_dict",
]
