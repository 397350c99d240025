"""RTMP ingest on trio: one task per publisher connection, driving the sans-I/O protocol.

A publisher connects to rtmp://host:port/live and publishes its stream key. The key is
checked with the streams service; an unknown or revoked key, an ended stream or a stream
that already has a publisher is refused with an RTMP error status and the connection is
closed. While publishing, the key is re-checked every `key_check_s` (0.5 s by default), so
a key rotated or a stream stopped mid-broadcast disconnects the publisher within a second.
A protocol error from one publisher closes that connection only.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Tag:
    """One media message from the publisher, handed to the stream's pipeline."""

    kind: str  # "video" | "audio" | "script"
    timestamp_ms: int
    payload: bytes


class Feed(Protocol):
    async def send(self, tag: Tag) -> None: ...


class Hub(Protocol):
    """Where publishes go: one pipeline per stream (see pipeline.MediaHub)."""

    def publish(self, stream_id: str) -> AbstractAsyncContextManager[Feed]:
        """Open the stream's feed; raises PublishRefused if it already has a publisher."""
        ...


class PublishRefused(Exception):
    """The publish cannot go ahead; the message goes back to the publisher."""


class RtmpIngest:
    def __init__(
        self, store: Store, streams: StreamService, hub: Hub, *, key_check_s: float = 0.5,
        app: str = "live",
    ) -> None:
        self._store = store
        self._streams = streams
        self._hub = hub
        self._key_check_s = key_check_s
        self._app = app
        self.connections = 0
        self.protocol_errors = 0
        self.refused = 0

    async def serve(
        self, host: str, port: int, *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await trio.serve_tcp(self.handle, port, host=host, task_status=task_status)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        peer = _peer(stream)
        conn = rtmp.ServerConnection()
        try:
            async with stream:
                await _Session(self, conn, stream, peer).run()
        except rtmp.RTMPProtocolError as exc:
            self.protocol_errors += 1
            log.info("rtmp %s: protocol error: %s", peer, exc)
        except trio.BrokenResourceError:
            log.info("rtmp %s: connection lost", peer)
        except trio.TooSlowError:
            log.info("rtmp %s: timed out", peer)
        except Exception:  # storage down, a bug: this publisher goes, the ingest stays
            log.exception("rtmp %s: session failed", peer)
        finally:
            self.connections -= 1


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
                    await self._pump(feed)
                    nursery.cancel_scope.cancel()
                if revoked:  # sent here, not by the watcher: one writer per socket
                    with trio.move_on_after(1):
                        await self.stream.send_all(self.conn.reject_publish(
                            revoked[0], code="NetStream.Publish.Denied"))
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


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"

