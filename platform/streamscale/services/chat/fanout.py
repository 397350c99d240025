"""The chat gateway: a WebSocket listener on trio + wsproto and the room fan-out engine.

DESIGN.md ("Measured", WebSocket fan-out): `deliver` only appends to a room's pending
list; one flusher task wakes at most once per `batch_interval_s`, encodes each dirty
room's batch frame once and writes the same bytes to every member with a non-blocking
write (`_ws.Peer.push`). A member whose kernel buffer is full gets a bounded backlog
drained by its own writer task; one whose backlog overflows is closed with 1013. The
first batch after a quiet spell goes out at once, so batching only adds latency
(up to one interval) when a room is busy.

The chat pipeline plugs in through callbacks and never sees a socket:
`authenticate(token) -> user_id | None`, `on_post(user_id, room, client_id, text) ->
message_id` (the ack: persisted; raise `ChatRejected` to refuse), `on_join(room)` /
`on_leave(room)` when a room gets its first / loses its last member here (subscribe /
unsubscribe the room's broadcast topic), `room_exists(room) -> bool` (asked before a
join to a room with no members here: unknown rooms are refused), and calls back into
`deliver`, `delete`, `notice`, `update_room`, `disconnect_user`. No storage or bus
imports here.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial

import trio

from ...protocols.chat import MAX_FRAME_BYTES as _MAX_FRAME_BYTES
from ...protocols.chat import (
    ChatProtocolError,
    CloseCode,
    ErrorCode,
    Join,
    Leave,
    Ping,
    Send,
    encode_ack,
    encode_batch,
    encode_deleted,
    encode_error,
    encode_joined,
    encode_message,
    encode_notice,
    encode_pong,
    parse_client_frame,
)
from ._ws import Budget, Peer, read_websocket, server_frame, wind_down

log = logging.getLogger(__name__)

__all__ = ["ChatGateway", "ChatLimits", "ChatRejected", "ChatStats", "Room", "serve_chat"]

Authenticate = Callable[[str], Awaitable[str | None]]
# (user, room, client id, text) -> message id, or (message id, status: "visible" | "held")
OnPost = Callable[[str, str, str, str], Awaitable[str | tuple[str, str]]]
RoomHook = Callable[[str], None]
RoomExists = Callable[[str], Awaitable[bool]]
Message = Mapping[str, object] | bytes  # bytes: one JSON object, already encoded
_RECENT_IDS = 1024  # per room: message ids remembered to drop re-broadcasts


@dataclass(frozen=True, kw_only=True)
class ChatLimits:
    """Gateway bounds (docs/chat-protocol.md states the client-visible ones)."""

    path: str = "/chat"
    batch_interval_s: float = 0.05
    viewer_cap_per_s: float = 60.0  # past this a room's batches are sampled; 0: never
    send_queue_frames: int = 64  # per-client backlog when its kernel buffer is full
    send_buffer_bytes: int | None = None  # SO_SNDBUF per socket; None: kernel default
    max_message_bytes: int = _MAX_FRAME_BYTES  # larger WebSocket messages close with 1009
    frames_per_s: float = 5.0  # per connection, all frame types
    frames_burst: int = 20
    flood_close_after: int = 50  # rate-limited frames in a row before closing with 1008
    max_connections: int = 50_000
    handshake_timeout_s: float = 10.0
    post_timeout_s: float = 5.0
    auth_timeout_s: float = 5.0
    close_timeout_s: float = 2.0  # to write a close frame and see the client's EOF
    shutdown_grace_s: float = 5.0


class ChatRejected(Exception):
    """Raised by `on_post` (or `authenticate`) to refuse: sent as an error frame with `code`;
    with `close_code` (e.g. 1008 for a ban) the connection is closed afterwards."""

    def __init__(self, code: str, message: str, *, close_code: int | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.close_code = close_code


@dataclass(kw_only=True)
class ChatStats:
    connections: int = 0
    batches: int = 0  # batch frames encoded (once per room per interval)
    deliveries: int = 0  # messages x members they were written or queued for
    queued_frames: int = 0  # frames that did not fit the kernel buffer at once
    skipped: int = 0  # messages left out by sampling, per room
    dropped_slow: int = 0
    closes: Counter[int] = field(default_factory=Counter)


class Room:
    """Members of one room on this gateway and the messages waiting for the next batch."""

    __slots__ = ("id", "last_refill", "members", "pending", "recent", "skipped", "tokens")

    def __init__(self, room_id: str, cap: float, now: float) -> None:
        self.id = room_id
        self.members: dict[Peer, None] = {}  # insertion-ordered set
        self.pending: list[bytes] = []
        self.recent: dict[str, None] = {}  # ids delivered lately, oldest first
        self.skipped = 0  # sampled out and not yet reported
        self.tokens = cap  # messages the next batches may carry (a one-second bucket)
        self.last_refill = now

    def take_batch(self, cap: float, now: float) -> tuple[list[bytes], int]:
        """The pending messages this batch carries (evenly sampled past the cap), and how
        many were skipped. Order is kept."""
        pending, self.pending = self.pending, []
        if cap <= 0:
            return pending, 0
        self.tokens = min(cap, self.tokens + (now - self.last_refill) * cap)
        self.last_refill = now
        allowed = int(self.tokens)
        if len(pending) <= allowed:
            self.tokens -= len(pending)
            chosen = pending
        else:
            self.tokens -= allowed
            chosen = [pending[i * len(pending) // allowed] for i in range(allowed)]
            self.skipped += len(pending) - allowed
        skipped = 0
        if chosen:
            skipped, self.skipped = self.skipped, 0
        return chosen, skipped


class ChatGateway:
    """Rooms, connections and the callbacks to the chat pipeline; served by `serve_chat`."""

    def __init__(
        self,
        *,
        on_post: OnPost | None = None,
        authenticate: Authenticate | None = None,
        on_join: RoomHook | None = None,
        on_leave: RoomHook | None = None,
        room_exists: RoomExists | None = None,
        limits: ChatLimits | None = None,
    ) -> None:
        self.limits = limits or ChatLimits()
        self.stats = ChatStats()
        self.rooms: dict[str, Room] = {}
        self.peers: set[Peer] = set()
        self._on_post = on_post
        self._authenticate = authenticate
        self._on_join = on_join
        self._on_leave = on_leave
        self._room_exists = room_exists
        self._room_state: dict[str, dict[str, object]] = {}
        self._dirty: dict[Room, None] = {}
        self._wake = trio.Event()
        self._last_flush = -math.inf

    # -- called by the pipeline -----------------------------------------------------------

    def deliver(self, room_id: str, messages: Iterable[Message]) -> None:
        """Queue messages (already moderated and persisted) for the room's next batch.

        A message dict whose `id` this room delivered recently is dropped (the pipeline may
        re-broadcast); pre-encoded bytes are passed through as they are."""
        room = self.rooms.get(room_id)
        if room is None:
            return  # nobody here watches it
        recent = room.recent
        for message in messages:
            if isinstance(message, bytes):
                room.pending.append(message)
                continue
            message_id = message.get("id")
            if message_id is not None:  # a re-broadcast after a worker handover: drop it
                key = str(message_id)
                if key in recent:
                    continue
                recent[key] = None
                if len(recent) > _RECENT_IDS:
                    del recent[next(iter(recent))]
            room.pending.append(encode_message(message))
        if room.pending:
            self._dirty[room] = None
            self._wake.set()

    def delete(self, room_id: str, message_id: str) -> None:
        """Tell the room a moderator removed a message (after any batch that carries it)."""
        if room := self.rooms.get(room_id):
            self._broadcast(room, server_frame(encode_deleted(room_id, message_id)))

    def notice(self, room_id: str, kind: str, text: str, *, user_id: str | None = None,
               **fields: object) -> None:
        """A moderation notice to a room, or only to `user_id`'s connections in it."""
        if room := self.rooms.get(room_id):
            frame = server_frame(encode_notice(room_id, kind, text, **fields))
            self._broadcast(room, frame, user_id=user_id)

    def update_room(self, room_id: str, **state: object) -> None:
        """Room settings for `joined` frames (slow_mode_s, followers_only, ...)."""
        self._room_state.setdefault(room_id, {}).update(state)

    def disconnect_user(self, user_id: str, *, code: int = CloseCode.POLICY_VIOLATION,
                        reason: str = "banned", room_id: str | None = None) -> int:
        """Close every connection of a user (in one room, or all); returns how many."""
        peers = [p for p in self.peers if p.user_id == user_id
                 and (room_id is None or p.room == room_id)]
        for peer in peers:
            self._close(peer, code, reason)
        return len(peers)

    # -- fan-out ----------------------------------------------------------------------------

    async def flusher(self) -> None:
        """Send every dirty room's batch, at most once per interval; sleeps while idle."""
        interval = self.limits.batch_interval_s
        while True:
            if not self._dirty:
                self._wake = trio.Event()
                await self._wake.wait()
            wait_s = self._last_flush + interval - trio.current_time()
            if wait_s > 0:
                await trio.sleep(wait_s)
            self._last_flush = trio.current_time()
            self.flush()

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for room in dirty:
            self._flush_room(room)

    def _flush_room(self, room: Room) -> None:
        messages, skipped = room.take_batch(self.limits.viewer_cap_per_s, trio.current_time())
        self.stats.skipped += skipped
        if not messages:
            return
        frame = server_frame(encode_batch(room.id, messages, skipped))
        self.stats.batches += 1
        self.stats.deliveries += len(messages) * self._broadcast(room, frame, flush=False)

    def _broadcast(self, room: Room, frame: bytes, *, user_id: str | None = None,
                   flush: bool = True) -> int:
        """Write one frame to the room's members (batch first, so order holds); a member whose
        backlog is full is dropped. Returns how many took it."""
        if flush and room.pending:
            self._dirty.pop(room, None)
            self._flush_room(room)
        overflowed = []
        sent = 0
        for peer in room.members:
            if user_id is not None and peer.user_id != user_id:
                continue
            queued = len(peer.backlog)
            if peer.push(frame):
                sent += 1
                if peer.backlog and len(peer.backlog) > queued:
                    self.stats.queued_frames += 1
            else:
                overflowed.append(peer)
        for peer in overflowed:
            self.stats.dropped_slow += 1
            self._close(peer, CloseCode.TRY_AGAIN_LATER, "too slow: send queue overflowed")
        return sent

    # -- membership ---------------------------------------------------------------------------

    def _enter(self, peer: Peer, room_id: str) -> None:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = Room(
                room_id, self.limits.viewer_cap_per_s, trio.current_time())
            if self._on_join is not None:
                self._hook(self._on_join, room_id)
        peer.room = room_id
        room.members[peer] = None
        state = self._room_state.get(room_id)
        peer.push(server_frame(encode_joined(room_id, user_id=peer.user_id, state=state)))

    def _exit(self, peer: Peer) -> None:
        room_id, peer.room = peer.room, None
        room = self.rooms.get(room_id) if room_id is not None else None
        if room is None:
            return
        room.members.pop(peer, None)
        if not room.members:
            del self.rooms[room.id]
            self._dirty.pop(room, None)
            if self._on_leave is not None:
                self._hook(self._on_leave, room.id)

    @staticmethod
    def _hook(hook: RoomHook, room_id: str) -> None:
        try:
            hook(room_id)
        except Exception:
            log.exception("chat room hook failed for %r", room_id)

    def _close(self, peer: Peer, code: int, reason: str) -> None:
        """Leave the room at once (no more batches) and let the connection task close."""
        if not peer.closing:
            self._exit(peer)
            peer.close(code, reason)

    # -- one connection ---------------------------------------------------------------------

    async def handle(self, stream: trio.SocketStream) -> None:
        limits = self.limits
        if limits.send_buffer_bytes is not None:
            import socket

            stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.send_buffer_bytes)
        peer = Peer(stream.socket.fileno(), limits.send_queue_frames, stream.socket)
        full = len(self.peers) >= limits.max_connections
        self.peers.add(peer)
        self.stats.connections += 1
        budget = Budget(limits.frames_per_s, limits.frames_burst, trio.current_time())
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer.writer)
                try:
                    with peer.read_scope:
                        await read_websocket(
                            stream, peer, partial(self._on_text, budget=budget),
                            path=limits.path, handshake_timeout_s=limits.handshake_timeout_s,
                            max_message_bytes=limits.max_message_bytes, full=full)
                except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
                    pass
                except Exception:
                    log.exception("chat connection failed")
                    self._close(peer, CloseCode.INTERNAL_ERROR, "internal error")
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self._exit(peer)
            self.peers.discard(peer)
            if peer.close_code is not None:
                self.stats.closes[peer.close_code] += 1
            with (suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
                  trio.CancelScope(shield=True), trio.move_on_after(limits.close_timeout_s)):
                await wind_down(stream, peer)
            await trio.aclose_forcefully(stream)

    async def _on_text(self, peer: Peer, text: str, *, budget: Budget) -> None:
        """One client frame: every frame, good or bad, spends the connection's budget."""
        allowed = budget.take(trio.current_time())
        if not allowed and budget.refused > self.limits.flood_close_after:
            self._close(peer, CloseCode.POLICY_VIOLATION, "flooding")
            return
        try:
            frame = parse_client_frame(text, max_bytes=self.limits.max_message_bytes)
        except ChatProtocolError as exc:
            peer.push(server_frame(encode_error(exc.code, exc.message, exc.client_id)))
            if exc.code == ErrorCode.SPOOFED_IDENTITY:
                self._close(peer, CloseCode.POLICY_VIOLATION, "spoofed identity")
            return
        if not allowed:
            client_id = frame.client_id if type(frame) is Send else None
            peer.push(server_frame(encode_error(
                ErrorCode.RATE_LIMITED, "too many frames; slow down", client_id)))
            return
        if type(frame) is Send:
            await self._post(peer, frame)
        elif type(frame) is Join:
            await self._join(peer, frame)
        elif type(frame) is Ping:
            peer.push(server_frame(encode_pong(frame.id)))
        elif type(frame) is Leave:
            self._exit(peer)

    async def _join(self, peer: Peer, frame: Join) -> None:
        user_id = None
        if frame.token is not None:
            if self._authenticate is not None:
                try:
                    with trio.fail_after(self.limits.auth_timeout_s):
                        user_id = await self._authenticate(frame.token)
                except (ChatRejected, trio.TooSlowError):
                    user_id = None
            if user_id is None:
                self._close(peer, CloseCode.AUTH_FAILED, "auth failed")
                return
        if frame.room not in self.rooms and self._room_exists is not None:
            try:
                with trio.fail_after(self.limits.auth_timeout_s):
                    exists = await self._room_exists(frame.room)
            except Exception:  # storage slow or down: the client may join again
                log.warning("chat: could not look room %r up", frame.room, exc_info=True)
                peer.push(server_frame(encode_error(
                    ErrorCode.UNAVAILABLE, "could not look the room up; join again", None)))
                return
            if not exists:  # refused: no subscription, the connection stays as it was
                peer.push(server_frame(encode_error(
                    ErrorCode.NO_SUCH_STREAM, f"no such room: {frame.room}", None)))
                return
        self._exit(peer)
        peer.user_id = user_id
        self._enter(peer, frame.room)

    async def _post(self, peer: Peer, frame: Send) -> None:
        cid = frame.client_id
        if peer.room is None:
            peer.push(server_frame(encode_error(ErrorCode.NOT_JOINED, "join a room first", cid)))
            return
        if peer.user_id is None or self._on_post is None:
            peer.push(server_frame(encode_error(
                ErrorCode.AUTH_REQUIRED, "sign in to post (join with a token)", cid)))
            return
        message_id: str | None
        status = "visible"
        try:
            with trio.fail_after(self.limits.post_timeout_s):
                posted = await self._on_post(peer.user_id, peer.room, cid, frame.text)
            message_id, status = posted if isinstance(posted, tuple) else (posted, status)
        except ChatRejected as exc:
            peer.push(server_frame(encode_error(exc.code, exc.message, cid)))
            if exc.close_code is not None:
                self._close(peer, exc.close_code, exc.code)
            return
        except trio.TooSlowError:
            message_id = None
        except Exception:
            log.exception("chat on_post failed")
            message_id = None
        if message_id is None:
            peer.push(server_frame(encode_error(
                ErrorCode.UNAVAILABLE, "not persisted; retry with the same id", cid)))
        else:
            peer.push(server_frame(encode_ack(cid, message_id, status)))

    def close_all(self, code: int = CloseCode.GOING_AWAY, reason: str = "going away") -> None:
        self.flush()
        for peer in list(self.peers):
            self._close(peer, code, reason)


async def serve_chat(
    gateway: ChatGateway,
    *,
    host: str,
    port: int,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` (default: the runtime's), then close every client with 1001.

    Reports the WebSocket URL (`ws://host:port/chat`, the real port when `port` is 0)."""
    if shutdown is None:
        from ...runtime import shutdown_requested

        shutdown = shutdown_requested()
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_host, bound_port = listeners[0].socket.getsockname()[:2]
    if ":" in bound_host:
        bound_host = f"[{bound_host}]"
    async with trio.open_nursery() as conns:
        async with trio.open_nursery() as serving:
            serving.start_soon(gateway.flusher)
            # trio.serve_listeners also rides out EMFILE/ENFILE (sleeps and retries).
            serving.start_soon(partial(trio.serve_listeners, gateway.handle, listeners,
                                       handler_nursery=conns))
            task_status.started(f"ws://{bound_host}:{bound_port}{gateway.limits.path}")
            await shutdown.wait()
            serving.cancel_scope.cancel()
        for listener in listeners:
            await listener.aclose()
        log.info("chat closing %d connections", len(gateway.peers))
        gateway.close_all()
        conns.cancel_scope.deadline = trio.current_time() + gateway.limits.shutdown_grace_s
