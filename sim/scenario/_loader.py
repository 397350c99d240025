"""Reading a scenario file: `extends`, fix variants, type conversion and semantic checks.

Strict on purpose: a typo in a capacity file silently falling back to a default is how a
plan turns out wrong. Every unknown key or bad value raises `ScenarioError` naming the
file, the dotted key and the reason.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from sim.scenario._schema import Scenario, Variant

VARIANT_KEYS = ("name", "description", "set")  # a [[variants]] table; `set` is dotted keys
EXTENDS = "extends"  # top-level key read by the loader, not a Scenario field


class ScenarioError(ValueError):
    """A scenario file is unreadable, has an unknown key or a bad value."""


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file, including its fix variants."""
    p = Path(path)
    return scenario_from_dict(_read(p, ()), source=str(p))


def _read(p: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """Parse one file; `extends = "other.toml"` deep-merges it over that file (tables merge,
    arrays replace), so failure scenarios state only how they differ from the baseline."""
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ScenarioError(f"{p}: no such scenario file") from exc
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from exc
    parent = raw.pop(EXTENDS, None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ScenarioError(f"{p}: extends: must be a file name")
    base_path = (p.parent / parent).resolve()
    if base_path in seen:
        raise ScenarioError(f"{p}: extends: cycle through {base_path}")
    if not base_path.is_file():
        raise ScenarioError(f"{p}: extends: no such scenario file {base_path}")
    return _merge(_read(base_path, (*seen, base_path)), raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out


def scenario_from_dict(raw: dict[str, Any], *, source: str = "<dict>") -> Scenario:
    raw = copy.deepcopy(raw)
    if "source" in raw:
        raise ScenarioError(f"{source}: source: set by the loader (the file's path), not a key")
    variants_raw = raw.pop("variants", [])
    base: Scenario = _build(Scenario, {**raw, "source": source}, "", source)
    _check(base, source)
    if not isinstance(variants_raw, list):
        raise ScenarioError(f"{source}: variants: must be an array of tables")
    variants = []
    for i, v in enumerate(variants_raw):
        where = f"variants[{i}]"
        if not isinstance(v, dict):
            raise ScenarioError(f"{source}: {where}: must be a table")
        unknown = set(v) - set(VARIANT_KEYS)
        if unknown:
            raise ScenarioError(f"{source}: {where}.{sorted(unknown)[0]}: unknown key")
        if not isinstance(v.get("name"), str) or not isinstance(v.get("set"), dict):
            raise ScenarioError(f"{source}: {where}: needs name (string) and set (table)")
        patched = copy.deepcopy(raw)
        for key, value in v["set"].items():
            _set_dotted(patched, key, value, f"{where}.set.{key}", source)
        patched["name"] = f"{base.name}+{v['name']}"
        sc = _build(Scenario, {**patched, "source": source}, "", source)
        _check(sc, source)
        variants.append(Variant(name=v["name"], description=str(v.get("description", "")),
                                scenario=sc))
    return dataclasses.replace(base, variants=tuple(variants))


def _set_dotted(data: dict[str, Any], key: str, value: Any, where: str, source: str) -> None:
    parts = key.split(".")
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ScenarioError(f"{source}: {where}: no such key path")
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError(f"{source}: {where}: no such key path")


def _build(cls: type[Any], data: Any, where: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: {where or '<top>'}: must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "variants"}
    for key in data:
        if key not in fields:
            raise ScenarioError(f"{source}: {_join(where, key)}: unknown key")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ScenarioError(f"{source}: {key}: missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], key, source)
    return cls(**kwargs)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, key, source)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ScenarioError(f"{source}: {key}: must be one of {typing.get_args(tp)}")
        return value
    if origin is tuple:
        inner = typing.get_args(tp)
        if not isinstance(value, list):
            raise ScenarioError(f"{source}: {key}: must be an array")
        if len(inner) == 2 and inner[1] is Ellipsis:
            return tuple(_convert(inner[0], v, f"{key}[{i}]", source)
                         for i, v in enumerate(value))
        if len(value) != len(inner):
            raise ScenarioError(f"{source}: {key}: must have {len(inner)} items")
        return tuple(_convert(t, v, f"{key}[{i}]", source)
                     for i, (t, v) in enumerate(zip(inner, value, strict=True)))
    if origin in (types.UnionType, typing.Union):  # pragma: no cover - not used yet
        raise ScenarioError(f"{source}: {key}: unsupported type")
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{source}: {key}: must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{source}: {key}: must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{source}: {key}: must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{source}: {key}: must be a string")
        return value
    raise ScenarioError(f"{source}: {key}: unsupported type {tp!r}")  # pragma: no cover


def _check(sc: Scenario, source: str) -> None:
    """Semantic checks the types cannot express."""

    def bad(key: str, reason: str) -> ScenarioError:
        return ScenarioError(f"{source}: {key}: {reason}")

    for sect in ("run", "workload", "delivery", "origin", "transcode", "api", "chat",
                 "database", "costs", "slo", "estimate"):
        obj = getattr(sc, sect)
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
                raise bad(f"{sect}.{f.name}", "must not be negative")
    w, r = sc.workload, sc.run
    if r.duration_s <= 0 or r.step_s <= 0 or r.step_s > r.duration_s:
        raise bad("run.step_s", "need 0 < step_s <= duration_s")
    if r.replications < 1:
        raise bad("run.replications", "must be at least 1")
    if w.peak_viewers < 1 or w.channels < 1 or w.streams < 1:
        raise bad("workload", "peak_viewers, channels and streams must be >= 1")
    if w.streams < w.channels:
        raise bad("workload.streams", "must be >= channels (every watched channel streams)")
    if not w.renditions:
        raise bad("workload.renditions", "at least one rendition")
    if abs(sum(x.share for x in w.renditions) - 1.0) > 1e-6:
        raise bad("workload.renditions", "shares must sum to 1")
    times = [t for t, _ in w.shape]
    if not times or times != sorted(times) or any(f < 0 for _, f in w.shape):
        raise bad("workload.shape", "times must increase and fractions be >= 0")
    if not 0 <= w.hot_channel_share <= 1:
        raise bad("workload.hot_channel_share", "must be in [0, 1]")
    if not sc.cdns:
        raise bad("cdns", "at least one CDN")
    if abs(sum(c.weight for c in sc.cdns) - 1.0) > 1e-6:
        raise bad("cdns", "weights must sum to 1")
    names = {c.name for c in sc.cdns}
    for i, c in enumerate(sc.cdns):
        if c.edges < 1 or c.edge_egress_gbps <= 0 or c.edge_requests_per_s <= 0:
            raise bad(f"cdns[{i}]", "edges, edge_egress_gbps, edge_requests_per_s must be > 0")
    for i, fl in enumerate(sc.faults):
        if fl.kind in ("cdn_down", "edge_down") and fl.target not in names:
            raise bad(f"faults[{i}].target", f"must name a CDN, one of {sorted(names)}")
        if fl.duration_s <= 0:
            raise bad(f"faults[{i}].duration_s", "must be > 0")
    if sc.delivery.part_s <= 0 or sc.delivery.part_s > sc.delivery.segment_s:
        raise bad("delivery.part_s", "need 0 < part_s <= segment_s")
    if w.session_mean_s <= 0 or w.session_sigma <= 0 or w.join_retry_s <= 0:
        raise bad("workload", "session_mean_s, session_sigma and join_retry_s must be > 0")
    if not 0 < sc.chat.batch_interval_s <= 1:
        raise bad("chat.batch_interval_s", "must be in (0, 1] seconds")
    if 0 < sc.chat.viewer_cap_per_s < 1:
        raise bad("chat.viewer_cap_per_s", "must be 0 (never sample) or at least 1")
