"""Scenario files: one TOML file drives the capacity model, the load run and the chaos drill.

The loader is strict on purpose: a typo in a capacity file silently falling back to a default
is how a plan turns out wrong. Every unknown key or bad value raises `ScenarioError` naming
the file, the dotted key and the reason. Units are in the names (`_s`, `_gbps`, `_kbps`).
Cost parameters in `Costs` default to the figures measured on this machine (DESIGN.md,
"Measured"); the scenario README says where each comes from.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Api", "Cdn", "Chat", "Costs", "Database", "Delivery", "Estimate", "Fault", "Origin",
    "Rendition", "Run", "Scenario", "ScenarioError", "Slo", "Transcode", "Variant", "Workload",
    "load_scenario",
]

FaultKind = Literal[
    "cdn_down", "edge_down", "origin_down", "db_down", "api_down",
    "chat_flood", "ingest_spike", "flag_spike",
]


class ScenarioError(ValueError):
    """A scenario file is unreadable, has an unknown key or a bad value."""


@dataclass(frozen=True, kw_only=True)
class Run:
    duration_s: float = 3600.0
    step_s: float = 2.0  # cohort update step; one HLS segment
    seed: int = 1
    replications: int = 3
    window_s: float = 60.0  # aggregation window of the time series


@dataclass(frozen=True, kw_only=True)
class Rendition:
    name: str
    bitrate_kbps: float
    share: float  # fraction of viewers watching this rung
    transcode_cores: float  # CPU cores per live stream for this rung (see Costs)


@dataclass(frozen=True, kw_only=True)
class Workload:
    peak_viewers: int
    # (t_s, fraction of peak_viewers), linearly interpolated; the arrival shape.
    shape: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    channels: int
    zipf_s: float = 1.1
    hot_channel_share: float = 0.0  # extra share of arrivals to channel 0 (a big event)
    session_mean_s: float = 1800.0  # exponential session lengths
    renditions: tuple[Rendition, ...]
    chat_msgs_per_viewer_s: float = 0.000868  # the seed's 75M/day at 1M viewers
    chat_join_fraction: float = 0.5  # viewers with the chat open
    flag_fraction: float = 0.002  # messages flagged for human review
    streams: int  # concurrent live streams (ingest + transcode) at peak
    stream_mean_s: float = 7200.0
    join_api_requests: int = 3  # auth, stream metadata, chat token
    join_db_reads: int = 2
    probe_viewers: int = 2000  # individually tracked viewers at peak (experience metrics)


@dataclass(frozen=True, kw_only=True)
class Cdn:
    name: str
    edges: int
    edge_egress_gbps: float
    edge_requests_per_s: float
    weight: float  # share of viewers steered to this CDN


@dataclass(frozen=True, kw_only=True)
class Delivery:
    segment_s: float = 2.0
    part_s: float = 0.5  # LL-HLS part; one blocking playlist reload + one part per part
    holdback_s: float = 1.5  # player sits this far behind the live edge (3 parts)
    pipeline_s: float = 1.0  # capture -> part available at origin (transcode + package)
    shield: bool = True
    coalescing: bool = True
    herd_fraction: float = 0.9  # share of a cell's requests that miss without coalescing
    failover: Literal["origin", "cdn", "none"] = "origin"
    failover_s: float = 60.0  # detect + re-steer (DNS TTL, player retry)
    abandon_after_s: float = 8.0  # nobody leaves a stall shorter than this (player retries)
    abandon_s: float = 30.0  # then viewers leave at this mean time
    edge_rtt_ms: float = 40.0


@dataclass(frozen=True, kw_only=True)
class Origin:
    instances: int
    cores_per_instance: float
    egress_gbps: float


@dataclass(frozen=True, kw_only=True)
class Transcode:
    cores: float
    admission: Literal["none", "slots"] = "none"  # none: all admitted, all slow down
    autoscale_step_cores: float = 0.0
    autoscale_interval_s: float = 60.0
    autoscale_delay_s: float = 180.0  # VM boot + image pull
    autoscale_max_cores: float = 0.0
    autoscale_target: float = 0.8
    max_lag_s: float = 4.0  # ingest buffer; beyond it streams disconnect


@dataclass(frozen=True, kw_only=True)
class Api:
    cores: float  # total, across instances (gateway + users service on the join path)
    instances: int = 1


@dataclass(frozen=True, kw_only=True)
class Chat:
    gateways: int
    cores_per_gateway: float
    placement: Literal["pinned", "spread"] = "spread"  # room on one gateway, or pub/sub
    room_rate_cap_msgs_s: float = 0.0  # slow mode per room; 0 = none
    persist: Literal["sync", "async"] = "sync"  # sync: persist, then broadcast (the seed)
    moderators: int = 20
    review_s: float = 30.0
    auto_triage_fraction: float = 0.0  # flags settled by a classifier, not a human


@dataclass(frozen=True, kw_only=True)
class Database:
    shards: int
    connections_per_shard: int = 32
    query_ms: float = 2.0
    hot_key_ops_per_s: float = 1000.0  # updates/s one row takes (row lock + WAL flush)
    viewer_count: Literal["row", "redis"] = "row"  # row: Streams.viewer_count per join/leave
    chat_batch_rows: int = 1
    standby: bool = False
    read_cache: bool = False  # join reads from Redis/Memcached: joins survive a DB outage
    failover_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class Costs:
    """CPU costs; defaults are DESIGN.md "Measured" figures; bench/ may replace them."""

    small_request_us: float = 80.0  # h11 on trio, 1 KB playlist / small part header
    api_request_us: float = 450.0  # hypercorn + quart-trio per API request
    copy_gbytes_per_s: float = 3.0  # 1 MB segments ~ loopback copy speed
    chat_delivery_us: float = 8.0  # Node ws per delivery: the fan-out listener's target
    bus_publish_us: float = 20.0  # per message per gateway (Redis pub/sub; assumed)
    moderate_us: float = 50.0  # regex + banned words per message (assumed)


@dataclass(frozen=True, kw_only=True)
class Fault:
    kind: FaultKind
    at_s: float
    duration_s: float
    target: str = ""  # CDN name for cdn_down / edge_down
    factor: float = 1.0  # multiplier for floods and spikes; edges down for edge_down


@dataclass(frozen=True, kw_only=True)
class Slo:
    startup_p95_s: float = 3.0
    rebuffer_ratio: float = 0.01
    live_latency_p95_s: float = 5.0  # the seed's "<5 s from streamer to viewer"
    chat_delivery_p99_s: float = 1.0
    error_rate: float = 0.001  # the seed's 99.9%
    moderation_wait_p95_s: float = 600.0
    refused_stream_ratio: float = 0.01


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """The seed's back-of-envelope inputs, made explicit (see sim.estimate)."""

    streams_per_day: int = 10_000
    stream_hours: float = 2.0
    recorded_bitrate_kbps: float = 2000.0
    retention_days: int = 30
    chat_messages_per_day: float = 75e6
    stored_bytes_per_message: float = 500.0
    users: int = 10_000_000
    bytes_per_user: float = 800.0
    stream_records_per_month: int = 300_000
    bytes_per_stream_record: float = 1000.0


@dataclass(frozen=True, kw_only=True)
class Variant:
    name: str
    description: str
    scenario: Scenario


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    description: str = ""
    source: str = ""
    run: Run = field(default_factory=Run)
    workload: Workload
    cdns: tuple[Cdn, ...]
    delivery: Delivery = field(default_factory=Delivery)
    origin: Origin
    transcode: Transcode
    api: Api
    chat: Chat
    database: Database
    costs: Costs = field(default_factory=Costs)
    faults: tuple[Fault, ...] = ()
    slo: Slo = field(default_factory=Slo)
    estimate: Estimate = field(default_factory=Estimate)
    variants: tuple[Variant, ...] = ()


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file, including its fix variants."""
    p = Path(path)
    return scenario_from_dict(_read(p, ()), source=str(p))


def _read(p: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """Parse one file; `extends = "other.toml"` deep-merges it over that file (tables merge,
    arrays replace), so failure scenarios state only how they differ from the baseline."""
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{p}: {exc}") from exc
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ScenarioError(f"{p}: extends: must be a file name")
    base_path = (p.parent / parent).resolve()
    if base_path in seen:
        raise ScenarioError(f"{p}: extends: cycle through {base_path}")
    return _merge(_read(base_path, (*seen, base_path)), raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out


def scenario_from_dict(raw: dict[str, Any], *, source: str = "<dict>") -> Scenario:
    raw = copy.deepcopy(raw)
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
        unknown = set(v) - {"name", "description", "set"}
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
