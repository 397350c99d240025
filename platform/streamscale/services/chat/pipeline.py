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
from datetime import datetime
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
    """

    def __init__(
        self, bus: Bus, *,
        deliver: Callable[[str, dict[str, Any]], None] | None = None,
        history: Callable[[str], Awaitable[list[dict[str, Any]]]] | None = None,
        deleted: Callable[[str, str], None] | None = None,
        kick: Callable[[str, str], None] | None = None,
        settings: Callable[[str, dict[str, Any]], None] | None = None,
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
        self._subscription: Any = None
        self._ready = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                  ) -> None:
        async with self._bus.subscribe(reply_topic(self.poster_id)) as subscription:
            self._subscription = subscription
            self._ready.set()
            task_status.started()
            async for event in subscription:
                if isinstance(event, Resync):
                    for topic in event.topics:
                        if topic.startswith("chat.room."):
                            await self._catch_up(topic.removeprefix("chat.room."))
                    continue
                self._on_message(event)

    async def _catch_up(self, room: str) -> None:
        """Deliver recent history (deduplicated): what a new or reconnected subscription
        may have missed between the room's first viewer joining and the topic going live.
        Live messages arriving meanwhile are held back and follow in `seq` order."""
        if self._history is None or room in self._held_back:
            return
        self._held_back[room] = []
        try:
            history = await self._history(room)
        finally:
            live = self._held_back.pop(room)
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

    async def watch(self, room_id: str) -> None:
        """Follow a room: subscribe its topic, then catch up on what came before."""
        await self._ready.wait()
        await self._subscription.subscribe(room_topic(room_id))
        await self._catch_up(room_id)

    async def unwatch(self, room_id: str) -> None:
        await self._ready.wait()
        await self._subscription.unsubscribe(room_topic(room_id))
        self._seen.pop(room_id, None)

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
