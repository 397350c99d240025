"""Faults that act on processes and on the world around the platform:

- `ServiceProcess`: `streamscale up --services X` as a child process (env config, fixed
  ports so a restart answers at the same address), started and waited for until its
  "ready" line, killed with SIGKILL (no graceful anything), restarted;
- `reconnect_storm`: many RTMP publishers dropping and reconnecting at once;
- `slow_database`: a TCP fault proxy with latency in front of PostgreSQL, and the
  storage URL that goes through it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import trio

from streamscale.testing.rtmp_session import publish_session

from .proxy import FaultProxy, Faults, open_proxy

log = logging.getLogger(__name__)

STREAMSCALE = str(Path(sys.executable).parent / "streamscale")
READY_LINE = "streamscale: ready"


def free_port() -> int:
    """A port free now (bound and released): for a service that must keep its address
    across a restart."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    """`streamscale up --services <services>` in a child process."""

    services: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)  # STREAMSCALE_* settings
    ready_timeout_s: float = 60.0
    process: trio.Process | None = None
    urls: dict[str, str] = field(default_factory=dict)  # label -> URL, as printed
    lines: list[str] = field(default_factory=list)
    starts: int = 0
    kills: int = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCALE_")}
        env["STREAMSCALE_DATA_DIR"] = str(self.data_dir)
        env.update(self.env)
        return env

    async def start(self, nursery: trio.Nursery) -> dict[str, str]:
        """Start the process and wait for its ready line; its output is drained by a task
        in `nursery` from then on. Returns the printed URLs."""
        if self.running:
            raise RuntimeError(f"{self.services} is already running")
        process = await trio.lowlevel.open_process(
            [STREAMSCALE, "up", "--services", self.services], env=self._env(),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.process, self.starts = process, self.starts + 1
        assert process.stdout is not None
        buffer = b""
        ready = False
        try:
            with trio.fail_after(self.ready_timeout_s):
                while not ready:
                    chunk = await process.stdout.receive_some()
                    if not chunk:
                        raise RuntimeError(f"streamscale up --services {self.services} exited "
                                           f"before ready: {self.lines[-5:]}")
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for raw in complete:
                        ready = self._line(raw.decode(errors="replace")) or ready
        except BaseException:
            self.kill()
            raise
        nursery.start_soon(self._drain, process)
        log.info("%s up (start %d): %s", self.services, self.starts, self.urls)
        return dict(self.urls)

    def _line(self, line: str) -> bool:
        self.lines.append(line)
        parts = line.split()
        if len(parts) == 3 and "://" in parts[2]:
            self.urls[parts[1]] = parts[2]
        return line.startswith(READY_LINE)

    async def _drain(self, process: trio.Process) -> None:
        assert process.stdout is not None
        try:
            while chunk := await process.stdout.receive_some():
                for raw in chunk.split(b"\n"):
                    if raw:
                        self.lines.append(raw.decode(errors="replace"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to drain, flush or say goodbye."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1

    async def wait_dead(self, timeout_s: float = 10.0) -> int | None:
        if self.process is None:
            return None
        with trio.fail_after(timeout_s):
            return await self.process.wait()

    async def restart(self, nursery: trio.Nursery) -> dict[str, str]:
        self.kill()
        await self.wait_dead()
        return await self.start(nursery)

    async def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (graceful), then SIGKILL after `grace_s`."""
        if not self.running:
            return
        assert self.process is not None
        self.process.terminate()
        with trio.move_on_after(grace_s):
            await self.process.wait()
            return
        self.kill()
        await self.wait_dead()


@dataclass
class StormResult:
    accepted: int = 0
    refused: int = 0  # the server answered and said no (e.g. the old session still held)
    failed: int = 0  # no answer in time, or the connection broke
    reasons: dict[str, int] = field(default_factory=dict)


async def reconnect_storm(rtmp_url: str, keys: list[str], *, rounds: int = 3,
                          timeout_s: float = 10.0) -> StormResult:
    """Every key's publisher connects and publishes, drops the connection, and reconnects
    at once, `rounds` times, all keys together: the load an ingest sees when a network
    blip drops every encoder behind one ISP."""
    parts = urlsplit(rtmp_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1935
    result = StormResult()

    async def one(key: str) -> None:
        for _ in range(rounds):
            try:
                with trio.fail_after(timeout_s):
                    session = await publish_session(host, port, key)
                    await session.stream.aclose()  # drop, as a broken link does
                result.accepted += 1
            except AssertionError as exc:  # the server closed: a refusal
                result.refused += 1
                result.reasons[str(exc)] = result.reasons.get(str(exc), 0) + 1
            except (trio.TooSlowError, OSError, trio.BrokenResourceError) as exc:
                result.failed += 1
                name = type(exc).__name__
                result.reasons[name] = result.reasons.get(name, 0) + 1

    async with trio.open_nursery() as nursery:
        for key in keys:
            nursery.start_soon(one, key)
    return result


async def slow_database(nursery: trio.Nursery, database_url: str, *, latency_s: float,
                        jitter_s: float = 0.0) -> tuple[FaultProxy, str]:
    """A proxy in front of `database_url`'s host:port with latency on every answer; returns
    it and the URL that goes through it (latency can be changed or cleared at runtime)."""
    parts = urlsplit(database_url)
    if not parts.hostname or not parts.port:
        raise ValueError(f"database URL needs an explicit host and port: {database_url}")
    proxy = await open_proxy(nursery, parts.hostname, parts.port)
    proxy.down = Faults(latency_s=latency_s, jitter_s=jitter_s)
    netloc = f"{parts.username}@" if parts.username else ""
    if parts.password:
        netloc = f"{parts.username}:{parts.password}@"
    proxied = urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))
    return proxy, proxied
