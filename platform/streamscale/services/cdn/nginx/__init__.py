"""nginx as an edge cache in front of the streamscale origin, unchanged.

The shipped configuration (`edge.conf`, rendered by `render_config` or `streamscale cdn
nginx-config`) is a pull-through cache that obeys the origin's Cache-Control, coalesces
concurrent misses (`proxy_cache_lock`) and keys LL-HLS blocking reloads with their query
while per-player parameters (CMCD) do not split the cache. `serve_nginx_edge` runs it in
the foreground under a prefix directory as an unprivileged user, for tests and benches.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from functools import partial
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import trio

log = logging.getLogger(__name__)

__all__ = ["NginxEdge", "NginxEdgeSettings", "NginxError", "find_nginx", "render_config",
           "serve_nginx_edge"]

_PLACEHOLDER = re.compile(r"@([a-z_]+)@")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
READY_LINE = b"start worker process"  # nginx logs it (notice) once it listens
UNPRIVILEGED_USER = "nobody"


class NginxError(Exception):
    """nginx is missing, refused the configuration, or stopped."""


@dataclass(frozen=True, kw_only=True)
class NginxEdgeSettings:
    """What the configuration needs; every value is checked (ValueError says which)."""

    origin_url: str  # http://host:port of the origin (no path)
    prefix: Path  # pid file, temp files and (default) the cache and error log live here
    host: str = "127.0.0.1"
    port: int = 8080
    cache_dir: Path | None = None  # default: prefix/cache
    edge_name: str = "nginx"  # sent upstream as x-streamscale-edge
    workers: int = 1
    worker_connections: int = 16_384
    keys_zone_mb: int = 16
    max_cache_mb: int = 1024
    origin_hold_s: float = 10.0  # the longest the origin holds a request (3 x target dur.)
    upstream_keepalive: int = 64
    error_log: str | None = None  # a path or "stderr"; default prefix/error.log

    def __post_init__(self) -> None:
        origin_address(self.origin_url)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535, not {self.port}")
        if not re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", self.host):
            raise ValueError(f"bad listen host {self.host!r}")
        if not _NAME.fullmatch(self.edge_name):
            raise ValueError(f"edge name must match {_NAME.pattern}, not {self.edge_name!r}")
        for name in ("workers", "worker_connections", "keys_zone_mb", "max_cache_mb",
                     "upstream_keepalive"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.origin_hold_s <= 3600:
            raise ValueError("origin_hold_s must be in (0, 3600]")
        for path in (self.prefix, self.cache_dir, self.error_log):
            if path is not None and re.search(r"[\s;{}'\"$]", str(path)):
                raise ValueError(f"paths may not hold spaces, quotes, ';', '{{}}' or '$': {path}")

    @property
    def cache_path(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.prefix / "cache"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"


def origin_address(origin_url: str) -> str:
    """`host:port` of an `http://host:port` origin URL; ValueError for anything else."""
    parts = urlsplit(origin_url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise ValueError(f"origin URL must be http://host:port, not {origin_url!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"bad origin port in {origin_url!r}") from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def template() -> str:
    return files(__package__).joinpath("edge.conf").read_text()


def render_config(settings: NginxEdgeSettings) -> str:
    """The nginx.conf text for `settings`."""
    hold_s = settings.origin_hold_s
    values = {
        "workers": str(settings.workers),
        "worker_connections": str(settings.worker_connections),
        "prefix": str(settings.prefix),
        "error_log": settings.error_log or str(settings.prefix / "error.log"),
        "cache_dir": str(settings.cache_path),
        "keys_zone_mb": str(settings.keys_zone_mb),
        "max_cache_mb": str(settings.max_cache_mb),
        "origin": origin_address(settings.origin_url),
        "upstream_keepalive": str(settings.upstream_keepalive),
        "listen": f"{settings.url.removeprefix('http://')}",
        "edge_name": settings.edge_name,
        # nginx times are whole seconds here: round up, then leave a margin
        "lock_timeout_s": str(int(hold_s + 0.999) + 5),
        "read_timeout_s": str(int(hold_s + 0.999) + 10),
    }

    def fill(match: re.Match[str]) -> str:
        return values[match[1]]

    return _PLACEHOLDER.sub(fill, template())


def find_nginx() -> str:
    """The nginx binary (PATH, then /usr/sbin), or NginxError saying how to get one."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                       else None)
    if binary is None:
        raise NginxError("nginx is not installed (Debian: apt-get install nginx-light; "
                         "`./dev test` installs it)")
    return binary


def prepare_prefix(settings: NginxEdgeSettings) -> tuple[Path, dict[str, int]]:
    """Write prefix/nginx.conf and make the prefix the run user's; returns (conf, the
    user/group options for the process). Run as root, nginx runs as `nobody` (master
    included), so the prefix must be reachable by it (e.g. under /tmp, not in a 0700 dir)."""
    settings.prefix.mkdir(parents=True, exist_ok=True)
    settings.cache_path.mkdir(parents=True, exist_ok=True)
    conf = settings.prefix / "nginx.conf"
    conf.write_text(render_config(settings))
    if os.geteuid() != 0:
        return conf, {}
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    for path in (settings.prefix, settings.cache_path):
        for root, dirs, names in os.walk(path):
            for name in [*dirs, *names]:
                os.chown(Path(root) / name, user.pw_uid, user.pw_gid)
        os.chown(path, user.pw_uid, user.pw_gid)
    return conf, {"user": user.pw_uid, "group": user.pw_gid}


def command(binary: str, prefix: Path, conf: Path) -> list[str]:
    """nginx in the foreground, its start-up errors to stderr (not /var/log)."""
    return [binary, "-p", str(prefix), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"]


@dataclass
class NginxEdge:
    """A running nginx edge: its base URL and process, and what it wrote to stderr."""

    url: str
    process: trio.Process
    log_lines: list[str] = field(default_factory=list)


async def serve_nginx_edge(
    settings: NginxEdgeSettings,
    *,
    binary: str | None = None,
    task_status: trio.TaskStatus[NginxEdge] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run nginx with `settings` until cancelled (then SIGTERM); reports a `NginxEdge`
    once nginx listens. NginxError if it does not start or stops by itself."""
    binary = binary or find_nginx()
    settings = replace(settings, error_log="stderr")
    conf, run_as = prepare_prefix(settings)
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(partial(
            trio.run_process, command(binary, settings.prefix, conf), check=False,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            **run_as,
        ))
        assert process.stderr is not None
        edge = NginxEdge(settings.url, process)
        pending = b""
        async for chunk in process.stderr:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                edge.log_lines.append(line)
                level = logging.DEBUG if "[notice]" in line else logging.WARNING
                log.log(level, "nginx: %s", line)
                if READY_LINE in raw and task_status is not trio.TASK_STATUS_IGNORED:
                    task_status.started(edge)
                    task_status = trio.TASK_STATUS_IGNORED
        await process.wait()
    # raised here, outside the nursery, so callers see NginxError itself
    tail = "\n".join(edge.log_lines[-10:])
    raise NginxError(f"nginx exited with status {process.returncode}:\n{tail}")
