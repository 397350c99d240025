"""The scenario schema: one frozen, keyword-only dataclass per TOML table.

Field names are the TOML keys, units in the names (`_s`, `_gbps`, `_kbps`); a field without
a default is required. `sim.scenario._loader` builds these from a file, key by key, from
the type hints, so adding a field here is all it takes for the loader to accept the key
(and `tests/sim/test_scenario_docs.py` then asks for a line in scenarios/README.md).
Cost parameters in `Costs` default to peer servers' figures and assumptions (DESIGN.md,
scenarios/README.md), none measured on the platform; `streamscale calibrate` measures them
here and `streamscale sim --costs` runs on that table (sim.calibration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal[
    "cdn_down", "edge_down", "origin_down", "db_down", "api_down",
    "chat_flood", "ingest_spike", "flag_spike",
]


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
    # Independent parts (keyframes) this far apart: a player starts on one at least
    # holdback_s behind the live edge, so U(0, this) further back, and stays there (hls.js
    # does not speed up by default); 0: every part is independent.
    independent_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Workload:
    peak_viewers: int
    # (t_s, fraction of peak_viewers), linearly interpolated; the arrival shape.
    shape: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    channels: int
    zipf_s: float = 1.1
    hot_channel_share: float = 0.0  # extra share of arrivals to channel 0 (a big event)
    session_mean_s: float = 1800.0  # mean session length (lognormal, see session_sigma)
    session_sigma: float = 1.0  # lognormal shape: median = mean * exp(-sigma^2 / 2)
    join_retry_s: float = 10.0  # a refused viewer retries after this mean time (any tick)
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
    # a player this many segments (segment_s) behind the live edge seeks back to it
    # (hls.js liveMaxLatencyDurationCount); below that it catches up at 1.1x speed
    live_max_latency_segments: float = 3.0
    # The viewer's client (defaults: a browser on a home link; a load test's players on
    # loopback set these to what they are, see sim.compare):
    access_mbps: float = 20.0  # the viewer's link; the first part downloads at this rate
    decode_s: float = 0.2  # first part loaded -> first frame (0: a player with no decoder)
    origin_fetch_s: float = 0.08  # edge -> shield -> origin round trip for a cold cell


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
    batch_interval_s: float = 0.05  # the gateway sends a room at most one frame per interval
    viewer_cap_per_s: float = 60.0  # messages/s a room delivers; past it sampled; 0 = never


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
    """CPU costs. The defaults are peer figures or assumptions, not measured on the platform;
    `streamscale calibrate` measures them here (sim.calibration; `sim --costs` reads it)."""

    small_request_us: float = 80.0  # peer: a bare h11-on-trio server, 1 KB playlist
    api_request_us: float = 450.0  # peer: a bare hypercorn-on-trio app per request
    copy_gbytes_per_s: float = 3.0  # peer: 1 MB objects ~ loopback copy speed
    chat_delivery_us: float = 8.0  # per batch frame per recipient (one write of shared bytes)
    chat_encode_us: float = 30.0  # per batch frame per gateway: encode once per room (assumed)
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
    # The seed's 99.9%, split by what fails (scenarios/README.md, "What the SLOs count"):
    viewer_error_rate: float = 0.001  # sessions refused at join or abandoned on a dead path
    chat_loss_rate: float = 0.001  # accepted messages never delivered (DESIGN: nothing lost)
    chat_refusal_rate: float = 0.01  # posts refused by slow mode / posts attempted
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
