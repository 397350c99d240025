"""scenarios/README.md documents every key the loader accepts, with its default, and no other.

Walks the schema dataclasses the loader builds from (`sim.scenario._schema`) and the
README's per-table key lists (`### [table]` headings, then rows of `` | `key` | default | ``),
so adding, renaming or re-defaulting a key without its line in the docs fails here.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

from sim.scenario import Scenario
from sim.scenario._loader import EXTENDS, VARIANT_KEYS

README = Path(__file__).resolve().parents[2] / "scenarios" / "README.md"
REQUIRED = object()
ABSENT = object()  # a key with no default value at all (extends)
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| ([^|]+) \|")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return REQUIRED


def _item_type(tp: Any) -> tuple[Any, bool]:
    """(dataclass, is_array) for a table field, else (None, False)."""
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        return (inner, True) if dataclasses.is_dataclass(inner) else (None, False)
    return (tp, False) if dataclasses.is_dataclass(tp) else (None, False)


def schema_tables() -> dict[str, dict[str, Any]]:
    """Heading -> {key: default} for every table the loader accepts."""
    tables: dict[str, dict[str, Any]] = {}

    def walk(cls: Any, heading: str, prefix: str) -> None:
        keys: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if cls is Scenario and f.name in ("source", "variants"):
                continue  # set by the loader; its own table below
            sub, is_array = _item_type(hints[f.name])
            name = f"{prefix}{f.name}"
            if sub is not None:
                walk(sub, f"[[{name}]]" if is_array else f"[{name}]", f"{name}.")
                if cls is Scenario:
                    continue
            keys[f.name] = _default(f)  # nested arrays (renditions) are keys of their parent
        tables[heading] = keys

    walk(Scenario, "top level", "")
    tables["top level"][EXTENDS] = ABSENT
    tables["[[variants]]"] = {k: (REQUIRED if k != "description" else "")
                              for k in VARIANT_KEYS}
    return tables


def readme_tables() -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            current = tables.setdefault(line[4:].strip(), {})
        elif line.startswith("## "):
            current = None
        elif current is not None and (m := ROW.match(line)):
            current[m[1]] = m[2].strip()
    return tables


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


TABLES = schema_tables()
DOCS = readme_tables()


def test_every_table_has_a_section_and_no_stale_ones() -> None:
    documented = {h for h in DOCS if h == "top level" or h.startswith("[")}
    assert documented == set(TABLES)


@pytest.mark.parametrize("heading", sorted(TABLES))
def test_every_key_documented_with_its_default(heading: str) -> None:
    schema, docs = TABLES[heading], DOCS.get(heading, {})
    assert set(docs) == set(schema), f"README {heading}: keys differ from the loader's"
    for key, default in schema.items():
        cell = docs[key]
        if default is REQUIRED:
            assert cell == "required", f"{heading} {key}: README says {cell}, loader requires it"
        elif default is ABSENT:
            assert cell == "(none)", f"{heading} {key}"
        elif dataclasses.is_dataclass(default) or (
                isinstance(default, tuple) and default and dataclasses.is_dataclass(default[0])):
            continue  # a table: documented as its own section
        else:
            assert cell.startswith("`") and cell.endswith("`"), f"{heading} {key}: {cell}"
            doc_value = tomllib.loads(f"v = {cell[1:-1]}")["v"]
            assert doc_value == _plain(default), f"{heading} {key}: README {cell}"


def test_documented_defaults_load(tmp_path: Path) -> None:
    """End to end: a file setting every documented key of every plain table to its
    documented default loads, and reads back those values."""
    from sim.scenario import load_scenario

    lines = [f'extends = "{README.parent / "baseline.toml"}"']
    for heading, rows in DOCS.items():
        if not (heading.startswith("[") and not heading.startswith("[[")):
            continue
        lines.append(heading)
        lines += [f"{k} = {v[1:-1]}" for k, v in rows.items() if v.startswith("`")]
    p = tmp_path / "defaults.toml"
    p.write_text("\n".join(lines) + "\n")
    sc = load_scenario(p)
    for heading, rows in DOCS.items():
        if heading.startswith("[") and not heading.startswith("[["):
            obj = getattr(sc, heading[1:-1])
            for k, v in rows.items():
                if v.startswith("`"):
                    assert _plain(getattr(obj, k)) == tomllib.loads(f"v = {v[1:-1]}")["v"]
