"""RTMP ingest on trio: one task per publisher connection, driving the sans-I/O protocol.

A publisher connects to rtmp://host:port/live and publishes its stream key. The key is
checked with the streams service; an unknown or revoked key, an ended stream or a stream
that already has a publisher is refused with an RTMP error status and the connection is
closed. While publishing, the key is re-checked every `key_check_s` (0.5 s by default), so
a key rotated or a stream stopped mid-broadcast disconnects the publisher within a second.
A protocol error from one publisher closes that connection only.

Limits keep a hostile client's cost bounded: each connection's buffered bytes are capped by
the RTMP layer (tightly until a publish is accepted); connections beyond
`max_connections_per_ip` from one client (an IPv4 address or an IPv6 /64) or beyond
`max_connections` in total are closed as soon as they are accepted, counted, and logged at
most once per `REFUSAL_LOG_INTERVAL_S` per client. An unauthenticated connection also has
`HANDSHAKE_TIMEOUT_S` to publish, so a slot held by an idle client frees itself.
"""

from __future__ import annotations

import ipaddress
import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import trio

from ...backends.storage import Store
from ...protocols import rtmp
from ...protocols.rtmp._events import _Sentinel
from ..errors import ApiError
from ..streaming import StreamService, key_hash

log = logging.getLogger(__name__)

RECEIVE_BYTES = 64 * 1024
HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 15.0  # no bytes from a publisher for this long: it is gone
REFUSAL_LOG_INTERVAL_S = 10.0  # one log line per refused client (and one for the total cap)
DEFAULT_MAX_CONNECTIONS = 256
"""Open connections per ingest. Worst case before publishing: 256 x (64 KiB budget + one
64 KiB read) = 32 MiB; a node transcodes a few ladders, so this never turns publishers away."""
DEFAULT_MAX_CONNECTIONS_PER_IP = 16
"""Open connections per client address: several encoders behind one NAT, each briefly twice
while it reconnects, still fit; one host cannot take the whole ingest."""


@dataclass(frozen=True, slots=True)
class Tag:
    """One media message from the publisher, handed to the stream's pipeline."""

    kind: str  # "video" | "audio" | "script"
    timestamp_ms: int
    payload: bytes


class Feed(Protocol):
    async def send(self, tag: Tag) -> None: ...


class Hub(Protocol):
    """Where publishes go: one pipeline per stream (see hub.MediaHub)."""

    def publish(self, stream_id: str) -> AbstractAsyncContextManager[Feed]:
        """Open the stream's feed; raises PublishRefused if it already has a publisher."""
        ...


class PublishRefused(Exception):
    """The publish cannot go ahead; the message goes back to the publisher."""


class RtmpIngest:
    def __init__(
        self, store: Store, streams: StreamService, hub: Hub, *, key_check_s: float = 0.5,
        app: str = "live",
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP,
        max_buffered_bytes: int = rtmp.DEFAULT_MAX_BUFFERED_BYTES,
        max_buffered_bytes_unpublished: int = rtmp.DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED,
    ) -> None:
        self._store = store
        self._streams = streams
        self._hub = hub
        self._key_check_s = key_check_s
        self._app = app
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self._max_buffered_bytes = max_buffered_bytes
        self._max_buffered_bytes_unpublished = max_buffered_bytes_unpublished
        self.connections = 0
        self.protocol_errors = 0
        self.refused = 0  # publishes refused (bad key, busy stream)
        self.refused_per_ip_limit = 0  # connections closed at once: too many from one client
        self.refused_total_limit = 0  # connections closed at once: the ingest was full
        self._per_client: dict[str, int] = {}  # client -> open connections
        self._refusal_log: dict[str, tuple[float, int]] = {}  # client -> (last log, unlogged)

    async def serve(
        self, host: str, port: int, *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await trio.serve_tcp(self.handle, port, host=host, task_status=task_status)

    async def handle(self, stream: trio.SocketStream) -> None:
        peer, client = _peer(stream)
        open_here = self._per_client.get(client, 0)
        if self.connections >= self.max_connections:
            self.refused_total_limit += 1
            self._log_refusal("*", "the ingest is full", self.connections, self.max_connections)
            await stream.aclose()
            return
        if open_here >= self.max_connections_per_ip:
            self.refused_per_ip_limit += 1
            self._log_refusal(client, f"too many connections from {client}", open_here,
                              self.max_connections_per_ip)
            await stream.aclose()
            return
        self.connections += 1
        self._per_client[client] = open_here + 1
        conn = rtmp.ServerConnection(
            max_buffered_bytes=self._max_buffered_bytes,
            max_buffered_bytes_unpublished=self._max_buffered_bytes_unpublished)
        try:  # except*: the session's nursery (pump + key watcher) wraps what it raises
            async with stream:
                await _Session(self, conn, stream, peer).run()
        except* rtmp.RTMPProtocolError as group:
            self.protocol_errors += 1
            log.info("rtmp %s: protocol error: %s", peer, group.exceptions[0])
        except* trio.BrokenResourceError:
            log.info("rtmp %s: connection lost", peer)
        except* trio.TooSlowError:
            log.info("rtmp %s: timed out", peer)
        except* Exception:  # storage down, a bug: this publisher goes, the ingest stays
            log.exception("rtmp %s: session failed", peer)
        finally:
            self.connections -= 1
            left = self._per_client[client] - 1
            if left:
                self._per_client[client] = left
            else:
                del self._per_client[client]

    def _log_refusal(self, key: str, why: str, open_now: int, limit: int) -> None:
        """Log a refused connection once per key per interval, with the count since then."""
        now = trio.current_time()
        last, unlogged = self._refusal_log.get(key, (-REFUSAL_LOG_INTERVAL_S, 0))
        if now - last < REFUSAL_LOG_INTERVAL_S:
            self._refusal_log[key] = (last, unlogged + 1)
            return
        if len(self._refusal_log) >= 4096:  # forget clients not refused for an interval
            self._refusal_log = {k: v for k, v in self._refusal_log.items()
                                 if now - v[0] < REFUSAL_LOG_INTERVAL_S}
        self._refusal_log[key] = (now, 0)
        log.warning("rtmp: closing new connections: %s (%d open, limit %d); %d more closed "
                    "since the last such message", why, open_now, limit, unlogged)


class _Session:
    def __init__(
        self, ingest: RtmpIngest, conn: rtmp.ServerConnection, stream: trio.SocketStream,
        peer: str,
    ) -> None:
        self.ingest = ingest
        self.conn = conn
        self.stream = stream
        self.peer = peer

    async def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            await self.stream.send_all(out)

    async def _events(self, deadline_s: float) -> rtmp.Event:
        """The next protocol event, reading from the socket as needed."""
        while True:
            event = self.conn.next_event()
            if not isinstance(event, _Sentinel):
                return event
            await self._flush()
            with trio.fail_after(deadline_s):
                data = await self.stream.receive_some(RECEIVE_BYTES)
            self.conn.receive_data(data)

    async def run(self) -> None:
        # Until publish: handshake, connect, createStream, publish, within a deadline.
        with trio.fail_after(HANDSHAKE_TIMEOUT_S):
            while True:
                event = await self._events(HANDSHAKE_TIMEOUT_S)
                if isinstance(event, rtmp.ConnectionClosed):
                    return
                if isinstance(event, rtmp.Connect) and event.app.split("/")[0] != self.ingest._app:
                    log.info("rtmp %s: unknown app %r", self.peer, event.app)
                    return
                if isinstance(event, rtmp.Publish):
                    break
        await self._publish(event)

    async def _refuse(self, message: str) -> None:
        self.ingest.refused += 1
        log.info("rtmp %s: publish refused: %s", self.peer, message)
        await self.stream.send_all(self.conn.reject_publish(message))

    async def _publish(self, publish: rtmp.Publish) -> None:
        key = publish.stream_key
        try:
            record = await self.ingest._streams.authorize_publish(key)
        except ApiError as exc:
            await self._refuse(exc.message)
            return
        try:
            async with self.ingest._hub.publish(record.id) as feed:
                await self.stream.send_all(self.conn.accept_publish())
                await self.ingest._streams.mark_live(record.id)
                log.info("rtmp %s: publishing stream %s", self.peer, record.id)
                revoked: list[str] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_key, record.id, key_hash(key), revoked,
                                       nursery.cancel_scope)
                    try:
                        await self._pump(feed)
                    except PublishRefused as exc:  # the media is refused (e.g. its codec)
                        revoked.append(str(exc))
                    nursery.cancel_scope.cancel()
                if revoked:  # sent here, not by the watcher: one writer per socket
                    with trio.move_on_after(2):
                        await self.stream.send_all(self.conn.reject_publish(
                            revoked[0], code="NetStream.Publish.Denied"))
                        # Closing now would reset the socket under a publisher mid-write
                        # (ffmpeg then says "Broken pipe"); let it read the status and go.
                        while await self.stream.receive_some(RECEIVE_BYTES):
                            pass
        except PublishRefused as exc:
            await self._refuse(str(exc))

    async def _pump(self, feed: Feed) -> None:
        """Media messages to the pipeline until the publisher stops."""
        while True:
            event = await self._events(IDLE_TIMEOUT_S)
            if isinstance(event, rtmp.VideoData):
                await feed.send(Tag("video", event.timestamp_ms, event.payload))
            elif isinstance(event, rtmp.AudioData):
                await feed.send(Tag("audio", event.timestamp_ms, event.payload))
            elif isinstance(event, rtmp.ScriptData):
                await feed.send(Tag("script", event.timestamp_ms, event.payload))
            elif isinstance(event, rtmp.DeleteStream | rtmp.FCUnpublish | rtmp.ConnectionClosed):
                log.info("rtmp %s: publisher stopped (%s)", self.peer, type(event).__name__)
                return

    async def _watch_key(self, stream_id: str, expected_hash: str, revoked: list[str],
                         scope: trio.CancelScope) -> None:
        """Cut the publisher off once its key is rotated or the stream is stopped."""
        while True:
            await trio.sleep(self.ingest._key_check_s)
            current = await self.ingest._store.get_stream(stream_id)
            if current is None or current.key_hash != expected_hash or current.status == "ended":
                reason = "stream ended" if current and current.status == "ended" else (
                    "stream key revoked")
                log.info("rtmp %s: %s; disconnecting", self.peer, reason)
                revoked.append(reason)
                scope.cancel()
                return


def _peer(stream: trio.SocketStream) -> tuple[str, str]:
    """("host:port" for logs, the client the per-IP limit counts)."""
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?", "?"
    return f"{host}:{port}", client_key(host)


def client_key(host: str) -> str:
    """The unit the per-IP limit counts: an IPv4 address, or the /64 of an IPv6 one (one
    host usually has a whole /64, so counting addresses would not limit it)."""
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)

