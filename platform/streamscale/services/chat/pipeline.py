"""The chat pipeline: gateway -> bus -> workers (moderate, persist, broadcast) -> gateways.

Posts travel as work items on the bus queue "chat", keyed by room, so one worker owns a
room at a time and keeps its order. A worker moderates, persists (idempotent by the
client's message id), then publishes the message on the room's topic, then answers the
poster on its reply topic, and only then acks the item. The poster's ack to the client
therefore means "persisted". A client that retries with the same id gets the original
message's id back and nothing is broadcast twice; a worker that dies before acking has
its items redelivered to the shard's next owner, which finds them persisted and
re-broadcasts (gateways drop message ids they have already delivered).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import trio

from ...backends.bus import Bus, Message, Resync, WorkItem
from ...backends.storage import ChatMessage, Store
from ..clock import new_id, utcnow

log = logging.getLogger(__name__)

QUEUE = "chat"
REPLY_TIMEOUT_S = 5.0


def room_topic(room_id: str) -> str:
    return f"chat.room.{room_id}"


def reply_topic(poster_id: str) -> str:
    return f"chat.reply.{poster_id}"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What moderation decided: allow (visible), hold (persisted for review) or block."""

    action: str  # "allow" | "hold" | "block"
    code: str = ""  # error code for the client when blocked (e.g. "banned", "slow_mode")
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    close: bool = False  # the client should be disconnected (banned)


class Moderator(Protocol):
    async def check(self, *, room_id: str, user_id: str, text: str) -> Verdict: ...


class PostRejected(Exception):
    def __init__(self, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.close = close


DELETED_AUTHOR = "[deleted]"
"""The username shown for messages whose author deleted the account (the text stays)."""


def message_body(message: ChatMessage, username: str) -> dict[str, Any]:
    """The public form of a chat message (WebSocket batches and the history API)."""
    return {
        "id": message.id, "seq": message.seq, "room": message.stream_id,
        "user_id": message.user_id, "username": username, "text": message.message,
        "at": message.created_at.isoformat().replace("+00:00", "Z"),
    }


async def message_bodies(store: Store, messages: Iterable[ChatMessage]) -> list[dict[str, Any]]:
    """`message_body` for each message, looking each author's name up once."""
    names: dict[str, str] = {}
    out = []
    for message in messages:
        if message.user_id not in names:
            user = await store.get_user(message.user_id)
            names[message.user_id] = user.username if user else DELETED_AUTHOR
        out.append(message_body(message, names[message.user_id]))
    return out


class ChatWorker:
    """Consumes the chat queue: moderate, persist, broadcast, reply, ack."""

    def __init__(self, store: Store, bus: Bus, moderator: Moderator) -> None:
        self._store = store
        self._bus = bus
        self._moderator = moderator
        self._usernames: OrderedDict[str, str] = OrderedDict()
        self.processed = 0
        self.blocked = 0
        self.held = 0
        self.retries = 0

    async def run(self, worker_id: str, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self._bus.consume(QUEUE, worker_id) as consumer:
            task_status.started()
            while True:
                items = await consumer.receive_batch(64)
                for item in items:
                    try:
                        await self._process(item)
                    except Exception:
                        # Storage down or a bug: the poster hears "unavailable" and its
                        # client retries with the same id (idempotent), so nothing acked
                        # to a client is lost and one bad item cannot stop the room.
                        log.exception("chat: work item %s failed", item.id)
                        await self._reply_failure(item)
                await consumer.ack(*items)

    async def _reply_failure(self, item: WorkItem) -> None:
        try:
            post = json.loads(item.payload)
            reply = {"cid": post["cid"], "user": post["user"], "room": post["room"],
                     "error": "unavailable", "message": "not persisted; retry with the same id"}
            await self._bus.publish(reply_topic(post["reply"]), json.dumps(reply).encode())
        except Exception:
            log.exception("chat: could not answer failed item %s", item.id)

    async def _username(self, user_id: str) -> str:
        name = self._usernames.get(user_id)
        if name is None:
            user = await self._store.get_user(user_id)
            name = user.username if user else DELETED_AUTHOR
            self._usernames[user_id] = name
            if len(self._usernames) > 10_000:
                self._usernames.popitem(last=False)
        return name

    async def _process(self, item: WorkItem) -> None:
        try:
            post = json.loads(item.payload)
            room, user_id, cid, text = post["room"], post["user"], post["cid"], post["text"]
            reply_to = post["reply"]
        except (ValueError, KeyError, TypeError):
            log.error("chat: dropping malformed work item %s", item.id)
            return
        reply: dict[str, Any] = {"cid": cid, "user": user_id, "room": room}
        verdict = await self._moderator.check(room_id=room, user_id=user_id, text=text)
        if verdict.action == "block":
            self.blocked += 1
            reply.update(error=verdict.code, message=verdict.message, close=verdict.close)
        else:
            status = "visible" if verdict.action == "allow" else "held"
            message, created = await self._store.add_chat_message(ChatMessage(
                id=new_id(), stream_id=room, user_id=user_id, message=text,
                created_at=_parse_time(post.get("at")), client_msg_id=cid, status=status,
                moderation=verdict.details or None,
            ))
            if message.status == "visible" and (created or item.redelivered):
                body = message_body(message, await self._username(user_id))
                await self._bus.publish(room_topic(room), json.dumps(
                    {"type": "message", "message": body}).encode())
            if not created:
                self.retries += 1
            if message.status == "held":
                self.held += created
            reply.update(id=message.id, status=message.status)
        self.processed += 1
        await self._bus.publish(reply_topic(reply_to), json.dumps(reply).encode())


def _posted_before(message: dict[str, Any], moment: datetime) -> bool:
    """Whether a message body's `at` is before `moment` (unreadable: no, keep it)."""
    at = message.get("at")
    if not isinstance(at, str):
        return False
    try:
        posted = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return False
    return posted.tzinfo is not None and posted < moment


def _parse_time(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed
        except ValueError:
            pass
    return utcnow()


class ChatPoster:
    """Puts posts on the bus and waits for the worker's answer (the persisted ack).

    Also relays room broadcasts to local callbacks (the WebSocket gateway), subscribing a
    room's topic while someone here watches it: "message" events to `deliver`, a
    moderator's "deleted" (message_id) to `deleted`, a ban's "kick" (user_id) to `kick`.
    Run `run()` in a nursery.

    What a room's topic may have missed (before its subscription went live, or lost in a
    `Resync`) is read from `history` in a task of its own, never in the subscription loop:
    one slow store query must not hold back every other room and every post's answer.
    Only messages stamped (`at`) since the room's first viewer here arrived (`watch`'s
    `since`) are caught up: older ones were posted when nobody here was in the room, and
    replaying them to whoever joins next would show them as new (a load run's readers saw
    a room's first messages arrive again, 3-11 s old, each time the room emptied and
    filled). `clock_skew_s` widens that bound for posts stamped by other processes' clocks
    (several gateways over Redis); in one process every stamp comes from one clock.
    """

    def __init__(
        self, bus: Bus, *,
        deliver: Callable[[str, dict[str, Any]], None] | None = None,
        history: Callable[[str], Awaitable[list[dict[str, Any]]]] | None = None,
        deleted: Callable[[str, str], None] | None = None,
        kick: Callable[[str, str], None] | None = None,
        settings: Callable[[str, dict[str, Any]], None] | None = None,
        clock_skew_s: float = 0.0,
    ) -> None:
        self.poster_id = secrets.token_hex(8)
        self._bus = bus
        self._deliver = deliver
        self._history = history
        self._deleted = deleted
        self._kick = kick
        self._settings = settings
        self._pending: dict[tuple[str, str, str], list[Any]] = {}
        self._seen: dict[str, OrderedDict[str, None]] = {}
        # Live messages of a room that arrive while its history is being read wait here,
        # so the history (older) is shown first and the room keeps its order.
        self._held_back: dict[str, list[dict[str, Any]]] = {}
        self._catch_ups: dict[str, trio.CancelScope] = {}  # the room's running catch-up
        self._since: dict[str, datetime] = {}  # watched room -> its first viewer's arrival
        self._clock_skew = timedelta(seconds=clock_skew_s)
        self._subscription: Any = None
        self._nursery: trio.Nursery | None = None
        self._ready = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                  ) -> None:
        async with self._bus.subscribe(reply_topic(self.poster_id)) as subscription, \
                trio.open_nursery() as nursery:
            self._subscription = subscription
            self._nursery = nursery
            self._ready.set()
            task_status.started()
            async for event in subscription:
                if isinstance(event, Resync):
                    for topic in event.topics:
                        room = topic.removeprefix("chat.room.")
                        if topic.startswith("chat.room.") and room in self._since:
                            self._start_catch_up(room)
                    continue
                self._on_message(event)
            nursery.cancel_scope.cancel()

    def _start_catch_up(self, room: str) -> None:
        """(Re)start the room's catch-up; its live messages are held back until it ends.

        A catch-up already running is replaced, not joined: its query may have been
        answered before the messages this one is for were lost. The held-back messages
        stay for the new one."""
        if self._history is None or self._nursery is None:
            return
        if (running := self._catch_ups.pop(room, None)) is not None:
            running.cancel()
        self._held_back.setdefault(room, [])
        scope = self._catch_ups[room] = trio.CancelScope()
        self._nursery.start_soon(self._catch_up, room, scope)

    async def _catch_up(self, room: str, scope: trio.CancelScope) -> None:
        """Deliver recent history (deduplicated, only what was posted since the room's
        first viewer here arrived), then the live messages held back meanwhile, in `seq`
        order. If the store fails, the held-back messages still go out (the gap stays
        for the history API)."""
        assert self._history is not None
        history: list[dict[str, Any]] = []
        with scope:
            try:
                history = await self._history(room)
            except Exception:
                log.warning("chat: could not catch room %r up from history", room,
                            exc_info=True)
        if self._catch_ups.get(room) is not scope:
            return  # replaced by a newer catch-up, or the room is no longer watched
        del self._catch_ups[room]
        live = self._held_back.pop(room, [])
        since = self._since.get(room)
        if since is not None:
            history = [m for m in history if not _posted_before(m, since - self._clock_skew)]
        for message in [*history, *sorted(live, key=lambda m: int(m.get("seq") or 0))]:
            self._relay(room, message)

    def _relay(self, room: str, message: dict[str, Any]) -> None:
        seen = self._seen.setdefault(room, OrderedDict())
        mid = str(message.get("id", ""))
        if mid in seen:
            return  # a redelivered item re-broadcast, or history already shown
        seen[mid] = None
        if len(seen) > 2048:
            seen.popitem(last=False)
        if self._deliver is not None:
            self._deliver(room, message)

    def _on_message(self, event: Message) -> None:
        try:
            data = json.loads(event.payload)
        except ValueError:
            return
        if event.topic.startswith("chat.room."):
            room = event.topic.removeprefix("chat.room.")
            kind = data.get("type", "message")
            if kind == "message":
                message = data.get("message") or {}
                held = self._held_back.get(room)
                if held is not None:
                    held.append(message)
                else:
                    self._relay(room, message)
            elif kind == "deleted" and self._deleted is not None:
                self._deleted(room, str(data.get("message_id", "")))
            elif kind == "kick" and self._kick is not None:
                self._kick(room, str(data.get("user_id", "")))
            elif kind == "settings" and self._settings is not None:
                self._settings(room, {k: v for k, v in data.items() if k != "type"})
            return
        waiter = self._pending.get((data.get("user"), data.get("room"), data.get("cid")))
        if waiter is not None:
            waiter[1] = data
            waiter[0].set()

    async def publish(self, room_id: str, event: dict[str, Any]) -> None:
        """Broadcast an event (message, deleted, kick) to every gateway watching the room."""
        await self._bus.publish(room_topic(room_id), json.dumps(event).encode())

    async def watch(self, room_id: str, *, since: datetime | None = None) -> None:
        """Follow a room: subscribe its topic (live from when this returns), then catch up,
        in the background, on what was posted from `since` (when the room's first viewer
        here arrived; default: now) until the subscription went live."""
        await self._ready.wait()
        self._since[room_id] = since or utcnow()
        if self._history is not None:
            self._held_back.setdefault(room_id, [])  # from the first live one: seq order
        try:
            await self._subscription.subscribe(room_topic(room_id))
        except BaseException:
            self._since.pop(room_id, None)
            self._held_back.pop(room_id, None)
            raise
        self._start_catch_up(room_id)

    async def unwatch(self, room_id: str) -> None:
        await self._ready.wait()
        # First forget the room's catch-up: one still running would otherwise deliver,
        # after this, history from before the room's next first viewer arrived.
        self._since.pop(room_id, None)
        if (running := self._catch_ups.pop(room_id, None)) is not None:
            running.cancel()
        self._held_back.pop(room_id, None)
        self._seen.pop(room_id, None)
        await self._subscription.unsubscribe(room_topic(room_id))

    async def post(self, *, user_id: str, room_id: str, client_id: str, text: str
                   ) -> dict[str, Any]:
        """Enqueue and wait for the worker's answer; raises PostRejected if refused."""
        await self._ready.wait()
        key = (user_id, room_id, client_id)
        waiter = self._pending.get(key)
        if waiter is None:
            waiter = self._pending[key] = [trio.Event(), None]
            payload = json.dumps({
                "room": room_id, "user": user_id, "cid": client_id, "text": text,
                "reply": self.poster_id, "at": utcnow().isoformat(),
            }).encode()
            try:
                await self._bus.enqueue(QUEUE, room_id, payload)
            except BaseException:
                self._pending.pop(key, None)
                raise
        try:
            with trio.fail_after(REPLY_TIMEOUT_S):
                await waiter[0].wait()
        finally:
            # Gone either way: a retry after a timeout enqueues again, and the worker's
            # idempotency by client id answers it with the original message.
            if self._pending.get(key) is waiter:
                del self._pending[key]
        reply: dict[str, Any] = waiter[1]
        if "error" in reply:
            raise PostRejected(str(reply["error"]), str(reply.get("message", "")),
                               close=bool(reply.get("close")))
        return reply
