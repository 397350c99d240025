"""Platform configuration: frozen keyword-only dataclasses from TOML plus environment.

Every field has a default, so `streamscale up` runs with no file at all (embedded
defaults: SQLite under `data_dir`, in-process bus). A TOML file overrides the defaults
section by section; `STREAMSCALE_<SECTION>__<KEY>` environment variables override both
(e.g. `STREAMSCALE_GATEWAY__PORT=9000`). Unknown keys and bad values raise ConfigError
naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "STREAMSCALE_"


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid."""


def _port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port in 0..65535 (0 picks a free port)")


def _positive(value: float) -> None:
    if not value > 0:  # NaN too
        raise ValueError("must be positive")


def _check(obj: object, name: str, check: typing.Callable[[Any], None]) -> None:
    try:
        check(getattr(obj, name))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """The HTTP API front (hypercorn + quart-trio)."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how clients reach the gateway; derived from host:port if empty
    max_body_bytes: int = 64 * 1024
    shutdown_grace_s: float = 5.0
    login_rate_per_minute: int = 10  # per client IP, login and register each
    write_rate_per_minute: int = 120  # per authenticated user, for POST/PATCH/DELETE
    trust_forwarded_for: bool = False  # honour X-Forwarded-For from a load balancer

    def __post_init__(self) -> None:
        _check(self, "port", _port)
        _check(self, "max_body_bytes", _positive)
        _check(self, "shutdown_grace_s", _positive)
        _check(self, "login_rate_per_minute", _positive)
        _check(self, "write_rate_per_minute", _positive)


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """JWT access tokens (short) and opaque refresh tokens (long, rotated on use)."""

    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    key_rotation_s: int = 24 * 3600  # a new signing key is made this often
    key_retire_s: int = 2 * 24 * 3600  # old keys still verify this long after rotation
    issuer: str = "streamscale"
    # argon2id cost; the defaults are argon2-cffi's (RFC 9106 low-memory profile)
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    password_parallelism: int = 4
    # The key that seals signing keys in the database (32 bytes, base64): a file, or the
    # value itself (STREAMSCALE_AUTH__SECRETS_KEY). Neither: data_dir/secrets.key, made
    # on first start (fine for one machine; a real deployment keeps it outside data_dir).
    secrets_key_file: str = ""
    secrets_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("access_ttl_s", "refresh_ttl_s", "key_rotation_s", "key_retire_s",
                     "password_time_cost", "password_memory_kib", "password_parallelism"):
            _check(self, name, _positive)
        if self.secrets_key_file and self.secrets_key:
            raise ConfigError("secrets_key: set secrets_key_file or secrets_key, not both")
        if self.key_retire_s < self.access_ttl_s:
            raise ConfigError(
                "key_retire_s: must be at least auth.access_ttl_s, or rotation "
                "would log users out"
            )


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """Where state lives. Empty url: SQLite file `streamscale.db` under data_dir."""

    url: str = ""
    threads: int = 8  # worker threads for blocking DB calls (CapacityLimiter)
    echo: bool = False

    def __post_init__(self) -> None:
        _check(self, "threads", _positive)
        if self.url and not self.url.startswith(("sqlite", "postgresql")):
            raise ConfigError(
                f"storage.url: {self.url!r} is not supported; use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DB"
            )


KNOWN_RUNGS = ("source", "720p", "480p", "360p", "160p")


@dataclass(frozen=True, kw_only=True)
class MediaConfig:
    """RTMP ingest, the transcode ladder, packaging and recording."""

    host: str = "127.0.0.1"
    rtmp_port: int = 1935
    # Ingest limits (why these numbers: protocols/rtmp/_chunk.py, services/media/ingest.py).
    rtmp_max_connections: int = 256  # open RTMP connections; more are closed at once
    rtmp_max_connections_per_ip: int = 16  # per IPv4 address / IPv6 /64
    rtmp_max_buffered_bytes: int = 16 * 1024 * 1024  # per connection once publishing
    rtmp_max_buffered_bytes_unpublished: int = 64 * 1024  # per connection until publish
    reconnect_grace_s: float = 5.0  # a publisher may reconnect this long before the end
    key_check_s: float = 0.5  # how often a live publisher's key is re-checked
    ladder: str = "source,720p,480p,360p"  # rungs, from KNOWN_RUNGS; taller than source skipped
    transcode_capacity: float = 2.0  # 720p30-ladder equivalents this node transcodes in real time
    # Overload (services/media/transcode_overload.py): shed a rung on sustained lag, restore
    # it when headroom is back; a shed rung's players get the next rung down meanwhile.
    shed_warmup_s: float = 5.0  # no decision in a ladder's first seconds (start-up burst)
    shed_behind_s: float = 1.0  # backlog behind real time that counts as lagging ...
    shed_sustain_s: float = 3.0  # ... with load > 1, without a break, this long: shed one
    restore_load: float = 0.7  # restore when the load with the rung back stays under this
    restore_after_s: float = 15.0  # ... for this long
    shed_cooldown_s: float = 5.0  # at most one shed or restore per this long
    segment_s: float = 2.0  # segments are cut on the first keyframe at or after this
    part_s: float = 0.334  # LL-HLS part target
    independent_s: float = 0.5  # extra IDRs in encoded rungs this often (whole parts); 0 = off
    window_segments: int = 12  # complete segments a live media playlist lists
    skip_until_s: float = 12.0  # CAN-SKIP-UNTIL for delta updates (>= 6 targets); 0 = off
    recordings_dir: str = ""  # "" = data_dir/recordings
    recording_retention_days: float = 30.0

    def __post_init__(self) -> None:
        _check(self, "rtmp_port", _port)
        for name in ("rtmp_max_connections", "rtmp_max_connections_per_ip"):
            _check(self, name, _positive)
        for name in ("rtmp_max_buffered_bytes", "rtmp_max_buffered_bytes_unpublished"):
            if getattr(self, name) < 4096:
                raise ConfigError(f"{name}: must be at least 4096 (room for the RTMP handshake)")
        for name in ("reconnect_grace_s", "key_check_s", "transcode_capacity", "segment_s",
                     "part_s", "recording_retention_days", "shed_behind_s"):
            _check(self, name, _positive)
        for name in ("shed_warmup_s", "shed_sustain_s", "restore_after_s", "shed_cooldown_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must not be negative")
        if not 0 < self.restore_load < 1:
            raise ConfigError("restore_load: must be between 0 and 1 (a fraction of real time)")
        if self.part_s > self.segment_s:
            raise ConfigError("part_s: must not exceed segment_s")
        if self.window_segments < 1:
            raise ConfigError("window_segments: must be at least 1")
        if self.independent_s < 0:
            raise ConfigError("independent_s: must be 0 (off) or positive")
        if self.skip_until_s < 0:
            raise ConfigError("skip_until_s: must be 0 (off) or positive")
        rungs = [r.strip() for r in self.ladder.split(",") if r.strip()]
        unknown = [r for r in rungs if r not in KNOWN_RUNGS]
        if not rungs or unknown:
            raise ConfigError(
                f"ladder: {', '.join(unknown) or 'empty'}: rungs must be a comma-separated "
                f"list of {', '.join(KNOWN_RUNGS)}"
            )

    @property
    def rungs(self) -> list[str]:
        return [r.strip() for r in self.ladder.split(",") if r.strip()]


@dataclass(frozen=True, kw_only=True)
class ChatConfig:
    """Chat: the WebSocket gateway (lean wsproto listener), the bus and the worker pool."""

    host: str = "127.0.0.1"
    port: int = 8082
    public_url: str = ""
    bus_url: str = "memory://"  # or redis://127.0.0.1:6379/0 for several processes
    shards: int = 16  # rooms hash onto shards; one worker owns a shard at a time
    workers: int = 2  # worker tasks in this process
    user_rate_per_10s: int = 10  # posts per user per room
    room_rate_per_s: int = 200  # accepted posts per room, all users together
    room_quiet_s: float = 2.0  # a user this long since their last post is never refused as
    # "room busy": a flood slows the flooders, not the ordinary chatters
    max_message_chars: int = 500
    toxicity_model: bool = True  # score messages with the shipped ML model (alt-profanity-check)
    moderation_refresh_s: float = 2.0  # bans, words, settings reach every worker within this
    # The WebSocket gateway (docs/chat-protocol.md, "Limits"):
    batch_interval_s: float = 0.05  # at most one batch frame per room per interval
    viewer_cap_per_s: float = 60.0  # messages per viewer per second; past it batches are
    # sampled (`skipped`); 0: never sample
    frames_per_s: float = 5.0  # client frames per connection per second (all types) ...
    frames_burst: int = 20  # ... with this burst; past it: error `rate_limited`
    send_queue_frames: int = 64  # frames queued per client once its socket is full; one
    # more and it is closed 1013

    def __post_init__(self) -> None:
        _check(self, "port", _port)
        for name in ("shards", "workers", "user_rate_per_10s", "room_rate_per_s",
                     "max_message_chars", "frames_per_s", "frames_burst", "send_queue_frames"):
            _check(self, name, _positive)
        _check(self, "room_quiet_s", _positive)
        if not 0 < self.batch_interval_s <= 1:
            raise ConfigError("batch_interval_s: must be in (0, 1] seconds")
        if not (self.viewer_cap_per_s == 0 or self.viewer_cap_per_s >= 1):  # NaN too
            # under 1 the one-second bucket never holds a whole message: nothing would pass
            raise ConfigError("viewer_cap_per_s: must be 0 (never sample) or at least 1")
        if self.moderation_refresh_s < 0:
            raise ConfigError("moderation_refresh_s: must not be negative")
        if not self.bus_url.startswith(("memory://", "redis://")):
            raise ConfigError("bus_url: use memory:// or redis://host:port/db")


@dataclass(frozen=True, kw_only=True)
class OriginConfig:
    """HLS origin: lean h11 listener serving playlists and segments."""

    host: str = "127.0.0.1"
    port: int = 8081
    public_url: str = ""

    def __post_init__(self) -> None:
        _check(self, "port", _port)


_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")  # edge and CDN names (HLS PATHWAY-ID charset)


@dataclass(frozen=True, kw_only=True)
class EdgeConfig:
    """One edge cache: a lean listener pulling through from the origin or a shield edge.

    `[[cdn.edges]]` tables in TOML, or `STREAMSCALE_CDN__EDGES` as a JSON list of them.
    """

    name: str  # unique among edges; used in logs, records and `upstream`
    cdn: str  # the CDN (HLS content-steering pathway) this edge belongs to
    host: str = "127.0.0.1"
    port: int = 0  # 0 picks a free port (only reachable in-process: set one for real use)
    public_url: str = ""  # how players reach it; the first edge of a CDN is its entry point
    region: str = ""  # a label for reports
    upstream: str = ""  # "" = the origin; else the name of a shield edge to pull from
    cache_mb: int = 256  # bounded memory cache; least recently used entries go first

    def __post_init__(self) -> None:
        for name in ("name", "cdn"):
            if not _NAME_RE.fullmatch(getattr(self, name)):
                raise ConfigError(f"{name}: use 1-32 of A-Z a-z 0-9 . _ -")
        _check(self, "port", _port)
        _check(self, "cache_mb", _positive)

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class CdnConfig:
    """Edges grouped into named CDNs, content steering between them, and the origin's
    fallback admission when every CDN is down."""

    edges: tuple[EdgeConfig, ...] = (
        EdgeConfig(name="a1", cdn="a", port=8090),
        EdgeConfig(name="b1", cdn="b", port=8091),
    )
    steering_ttl_s: int = 5  # a player reloads the steering manifest this often (TTL 1 s + a
    # held reload of the rest, answered at once when the priority changes; services/cdn/steering)
    health_interval_s: float = 1.0  # the steering server probes each edge this often
    health_timeout_s: float = 1.0  # a probe slower than this fails
    health_failures: int = 2  # consecutive failed probes mark an edge down
    origin_viewer_limit: int = 50  # viewer sessions the origin serves directly (fallback)
    origin_session_idle_s: float = 10.0  # a direct session frees its slot after this idle
    records_flush_s: float = 1.0  # edges send access records in batches this often
    viewer_idle_s: float = 10.0  # a viewer counts as watching until idle this long
    viewer_sample_s: float = 5.0  # viewer counts are stored this often per live stream

    def __post_init__(self) -> None:
        names = [e.name for e in self.edges]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ConfigError(f"edges: two edges are named {duplicate!r}")
        by_name = {e.name: e for e in self.edges}
        for edge in self.edges:
            seen = {edge.name}
            hop = edge
            while hop.upstream:
                if hop.upstream not in by_name:
                    raise ConfigError(f"edges: {hop.name!r} names unknown upstream "
                                      f"{hop.upstream!r}")
                hop = by_name[hop.upstream]
                if hop.name in seen:
                    raise ConfigError(f"edges: upstream loop through {hop.name!r}")
                seen.add(hop.name)
        for name in ("steering_ttl_s", "health_interval_s", "health_timeout_s",
                     "health_failures", "origin_viewer_limit", "origin_session_idle_s",
                     "records_flush_s", "viewer_idle_s", "viewer_sample_s"):
            _check(self, name, _positive)

    def cdns(self) -> dict[str, tuple[EdgeConfig, ...]]:
        """CDN name -> its edges, in configuration order (the first is the entry point)."""
        out: dict[str, list[EdgeConfig]] = {}
        for edge in self.edges:
            out.setdefault(edge.cdn, []).append(edge)
        return {name: tuple(edges) for name, edges in out.items()}


@dataclass(frozen=True, kw_only=True)
class AnalyticsConfig:
    """Stream analytics (services/analytics): ingest health reports, rollups, retention."""

    health_sample_s: float = 2.0  # the media node snapshots each live stream's ingest health
    health_flush_s: float = 10.0  # ... and sends them in batches over the bus this often
    rollup_s: float = 60.0  # fine samples roll up into 1 min and 1 h buckets this often
    raw_retention_s: float = 24 * 3600.0  # fine samples (viewer, health) kept this long
    minute_retention_s: float = 30 * 24 * 3600.0  # 1 min buckets kept this long; 1 h: always

    def __post_init__(self) -> None:
        for name in ("health_sample_s", "health_flush_s", "rollup_s", "raw_retention_s",
                     "minute_retention_s"):
            _check(self, name, _positive)


@dataclass(frozen=True, kw_only=True)
class Config:
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    origin: OriginConfig = field(default_factory=OriginConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    cdn: CdnConfig = field(default_factory=CdnConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)

    def __post_init__(self) -> None:
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError("log_level: must be one of DEBUG, INFO, WARNING, ERROR")

    @property
    def storage_url(self) -> str:
        return self.storage.url or f"sqlite:///{self.data_dir / 'streamscale.db'}"

    @property
    def gateway_url(self) -> str:
        gw = self.gateway
        return gw.public_url or f"http://{gw.host}:{gw.port}"

    @property
    def origin_url(self) -> str:
        return self.origin.public_url or f"http://{self.origin.host}:{self.origin.port}"

    @property
    def recordings_root(self) -> Path:
        return Path(self.media.recordings_dir) if self.media.recordings_dir else (
            self.data_dir / "recordings")

    @property
    def chat_url(self) -> str:
        return self.chat.public_url or f"ws://{self.chat.host}:{self.chat.port}/chat"

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://{self.media.host}:{self.media.rtmp_port}/live"


C = TypeVar("C")


def build(cls: type[C], data: Mapping[str, Any], *, where: str = "") -> C:
    """Build dataclass `cls` from a mapping, converting and checking each value."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            choices = ", ".join(sorted(known))
            raise ConfigError(f"{where}{key}: unknown key (known keys: {choices})")
        kwargs[key] = _convert(hints[key], raw, f"{where}{key}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def _convert(hint: Any, raw: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{key}: expected a table, got {type(raw).__name__}")
        return build(hint, raw, where=f"{key}.")
    if typing.get_origin(hint) is tuple:
        (item, _) = typing.get_args(hint)
        if isinstance(raw, str):  # from the environment
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"{key}: expected a JSON list: {exc}") from None
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(raw).__name__}")
        return tuple(_convert(item, value, f"{key}[{i}]") for i, value in enumerate(raw))
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if isinstance(raw, str) and raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if hint is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if hint is str:
            if not isinstance(raw, str):
                raise ValueError
            return raw
        if hint is Path:
            return Path(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{key}: expected {getattr(hint, '__name__', hint)}, got {raw!r}"
        ) from None
    raise ConfigError(f"{key}: unsupported type {hint!r}")  # pragma: no cover



def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`STREAMSCALE_GATEWAY__PORT=9000` -> {"gateway": {"port": "9000"}}."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {part} is not a section")
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load the config: defaults, then the TOML file, then the environment."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(f"{ENV_PREFIX}CONFIG"):
        path = Path(environ[f"{ENV_PREFIX}CONFIG"])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data = _merge(data, env_overrides(environ))
    try:
        return build(Config, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None


def replace(config: Config, **sections: Any) -> Config:
    """A copy of `config` with whole sections or top-level fields replaced (for tests)."""
    return dataclasses.replace(config, **sections)
