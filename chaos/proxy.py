"""A trio TCP proxy between two services, with faults set at runtime.

Faults per direction (`up`: client to server, `down`: server to client): added latency and
jitter (order kept: a chunk never overtakes the one before it), a bandwidth cap, slicing
(each write cut into `slice_bytes` pieces `slice_delay_s` apart). Whole-proxy faults:
`blackhole` (connections are accepted and read, nothing is forwarded or answered) and
`reset` (open connections are closed with a TCP RST, new ones are reset at accept).

Faults are read as each chunk goes through, so setting one applies at once to open
connections; `clear()` is the rollback.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
import struct
from dataclasses import dataclass, field
from functools import partial

import trio

log = logging.getLogger(__name__)

_RECV_BYTES = 64 * 1024
_QUEUE_CHUNKS = 64  # chunks in flight per direction before the reader waits (backpressure)


@dataclass
class Faults:
    """What one direction suffers; the defaults are a clean wire."""

    latency_s: float = 0.0
    jitter_s: float = 0.0  # uniform in [0, jitter_s), added to latency_s
    bandwidth_bytes_per_s: float = math.inf
    slice_bytes: int = 0  # 0: writes go through whole
    slice_delay_s: float = 0.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0 or self.slice_delay_s < 0:
            raise ValueError(f"delays must be >= 0: {self}")
        if not self.bandwidth_bytes_per_s > 0:
            raise ValueError(f"bandwidth_bytes_per_s must be > 0: {self}")
        if self.slice_bytes < 0:
            raise ValueError(f"slice_bytes must be >= 0: {self}")


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    swallowed_bytes: int = 0  # read while blackholed


@dataclass(eq=False)
class _Conn:
    client: trio.SocketStream
    scope: trio.CancelScope
    upstream: trio.SocketStream | None = None


@dataclass
class FaultProxy:
    """Listen on `host:port` (0: any free port) and forward to `upstream_host:upstream_port`."""

    upstream_host: str
    upstream_port: int
    up: Faults = field(default_factory=Faults)
    down: Faults = field(default_factory=Faults)
    blackhole: bool = False
    seed: int = 0
    stats: ProxyStats = field(default_factory=ProxyStats)
    port: int = 0  # the bound port, once serving
    _reset: bool = False
    _conns: set[_Conn] = field(default_factory=set)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- control -----------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_reset(self, on: bool = True) -> None:
        """While on: every open connection is reset now, and each new one at accept."""
        self._reset = on
        if on:
            for conn in list(self._conns):
                self._abort(conn)

    def clear(self) -> None:
        """Back to a clean wire (the rollback of every fault)."""
        self.up, self.down = Faults(), Faults()
        self.blackhole = False
        self._reset = False

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # -- serving -----------------------------------------------------------------------

    async def serve(
        self, *, host: str = "127.0.0.1", port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = int(listeners[0].socket.getsockname()[1])
        log.info("fault proxy %s -> %s:%d", self.address, self.upstream_host,
                 self.upstream_port)
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    def _abort(self, conn: _Conn) -> None:
        """Close both sides with RST (SO_LINGER 0) and stop the connection's tasks."""
        for stream in (conn.client, conn.upstream):
            if stream is not None:
                _linger_zero(stream)
                stream.socket.close()
        conn.scope.cancel()
        self.stats.resets += 1

    async def _connection(self, client: trio.SocketStream) -> None:
        self.stats.connections += 1
        conn = _Conn(client, trio.CancelScope())
        if self._reset:
            self._abort(conn)
            return
        self._conns.add(conn)
        try:
            with conn.scope:
                if self.blackhole:
                    await self._swallow(client)
                    return
                try:
                    conn.upstream = await trio.open_tcp_stream(
                        self.upstream_host, self.upstream_port)
                except OSError as exc:
                    log.info("fault proxy: upstream refused: %s", exc)
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pipe, client, conn.upstream, "up")
                    nursery.start_soon(self._pipe, conn.upstream, client, "down")
        finally:
            self._conns.discard(conn)
            for stream in (client, conn.upstream):
                if stream is not None:
                    await trio.aclose_forcefully(stream)

    async def _swallow(self, client: trio.SocketStream) -> None:
        while data := await _receive(client):
            self.stats.swallowed_bytes += len(data)

    async def _pipe(self, source: trio.SocketStream, sink: trio.SocketStream,
                    direction: str) -> None:
        """Read `source`, stamp each chunk with its delivery time, write it to `sink`."""
        send, receive = trio.open_memory_channel[tuple[float, bytes]](_QUEUE_CHUNKS)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._deliver, receive, sink, direction)
            async with send:
                last_due = 0.0
                while data := await _receive(source):
                    if self.blackhole:
                        self.stats.swallowed_bytes += len(data)
                        continue
                    faults = self._faults(direction)
                    delay_s = faults.latency_s + self._rng.uniform(0, faults.jitter_s)
                    last_due = max(last_due, trio.current_time() + delay_s)
                    await send.send((last_due, data))

    async def _deliver(self, receive: trio.MemoryReceiveChannel[tuple[float, bytes]],
                       sink: trio.SocketStream, direction: str) -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                if self.blackhole:
                    self.stats.swallowed_bytes += len(data)
                    continue
                faults = self._faults(direction)
                step = faults.slice_bytes or len(data)
                capped = math.isfinite(faults.bandwidth_bytes_per_s)
                if capped:  # pieces of at most 100 ms at the cap, each paced before it goes
                    step = min(step, max(1, int(faults.bandwidth_bytes_per_s * 0.1)))
                for start in range(0, len(data), step):
                    piece = data[start:start + step]
                    if start and faults.slice_delay_s:
                        await trio.sleep(faults.slice_delay_s)
                    if capped:
                        await trio.sleep(len(piece) / faults.bandwidth_bytes_per_s)
                    try:
                        await sink.send_all(piece)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                    if direction == "up":
                        self.stats.bytes_up += len(piece)
                    else:
                        self.stats.bytes_down += len(piece)
            # the source finished: pass the half-close on
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await sink.send_eof()

    def _faults(self, direction: str) -> Faults:
        faults = self.up if direction == "up" else self.down
        faults.check()
        return faults


async def _receive(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(_RECV_BYTES)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""


def _linger_zero(stream: trio.SocketStream) -> None:
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def open_proxy(nursery: trio.Nursery, upstream_host: str, upstream_port: int,
                     **kwargs: object) -> FaultProxy:
    """Start a FaultProxy in `nursery`; returns once it listens."""
    proxy = FaultProxy(upstream_host, upstream_port, **kwargs)  # type: ignore[arg-type]
    await nursery.start(partial(proxy.serve))
    return proxy
