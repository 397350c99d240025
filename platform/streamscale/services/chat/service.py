"""The chat service: the WebSocket gateway and the worker pool, wired to the bus.

`run` serves the lean wsproto gateway (`fanout.serve_chat`) and runs `chat.workers`
worker tasks. Either half can run alone in other processes over a Redis bus: gateways
and workers only meet on the bus.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

import trio
from limits import RateLimitItemPerSecond, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ...backends.storage import Store
from ...config import ChatConfig, Config
from ...protocols.chat import CloseCode
from ...runtime import ServiceInfo, current_resources
from ..auth import KeyRing
from ..clock import utcnow
from ..errors import ApiError
from ._metrics import chat_metrics
from .fanout import ChatGateway, ChatLimits, ChatRejected, serve_chat
from .moderation.shipped_model import ProfanityCheckModel
from .moderation_actions import room_settings_event
from .moderation_store import StoreModerator
from .pipeline import ChatPoster, ChatWorker, PostRejected, message_bodies

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 1.0
"""How far other processes' clocks may be behind this one's (several gateways over Redis):
a room's catch-up takes messages stamped this much before its first viewer arrived, so a
post from a slow clock is not missed; a viewer may see up to this much of the past."""


class PostLimits:
    """Flood control before the bus: per user per room, then per room in total.

    One instance per process (`Resources.post_limits`), shared by the API's HTTP posts and
    the WebSocket gateway, so a user posting over both counts against one budget. This is
    the only per-user post limit (`chat.user_rate_per_10s`, a moving window).

    The room limit must not starve ordinary chatters when a flood fills it: a user whose
    last accepted post in the room is at least `quiet_s` old is never refused for the
    room being busy (their pace bounds what they add); only users who post often compete
    for the room's budget. So a flood slows the flooders, not the conversation.
    """

    def __init__(self, config: ChatConfig, *, quiet_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._user = parse(f"{config.user_rate_per_10s}/10 seconds")
        self._room = RateLimitItemPerSecond(config.room_rate_per_s)
        self._quiet_s = quiet_s
        self._clock = clock
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()

    def check(self, user_id: str, room_id: str) -> None:
        if not self._limiter.hit(self._user, "user", room_id, user_id):
            raise PostRejected("rate_limited", "you are sending messages too fast")
        now = self._clock()
        key = (room_id, user_id)
        last = self._last.get(key)
        room_ok = self._limiter.hit(self._room, "room", room_id)
        if not room_ok and last is not None and now - last < self._quiet_s:
            raise PostRejected("room_busy", "this room is too busy right now; try again")
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > 100_000:
            self._last.popitem(last=False)


def gateway_limits(config: ChatConfig) -> ChatLimits:
    """The WebSocket gateway's operator-set bounds (the rest keep `ChatLimits` defaults)."""
    return ChatLimits(
        batch_interval_s=config.batch_interval_s, viewer_cap_per_s=config.viewer_cap_per_s,
        frames_per_s=config.frames_per_s, frames_burst=config.frames_burst,
        send_queue_frames=config.send_queue_frames,
    )


def _settings_text(fields: dict[str, Any]) -> str:
    slow = fields.get("slow_mode_s") or 0
    parts = [f"slow mode: one message every {slow} s" if slow else "slow mode off",
             "followers only" if fields.get("followers_only") else "anyone may chat"]
    return "Chat rules changed: " + ", ".join(parts) + "."


async def history(store: Store, room_id: str, limit: int = 50) -> list[dict[str, Any]]:
    page = await store.list_chat_messages(room_id, limit=limit)
    return await message_bodies(store, reversed(page.items))  # oldest first, as shown


async def run(
    config: Config, *, task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    resources = current_resources()
    store = await resources.store()
    bus = await resources.bus()
    keys = KeyRing(store, config.auth)
    await keys.load()
    limits = resources.post_limits()  # shared with the API's HTTP posts in this process
    gateway: ChatGateway

    async def authenticate(token: str) -> str | None:
        try:
            user_id = (await keys.verify(token)).user_id
        except ApiError:
            return None
        # Signed by us, but the account may be gone since (deleted): the token is void.
        return user_id if await store.get_user(user_id) is not None else None

    async def on_post(user_id: str, room_id: str, client_id: str, text: str
                      ) -> tuple[str, str]:
        try:
            if len(text) > config.chat.max_message_chars:
                raise PostRejected("too_long",
                                   f"at most {config.chat.max_message_chars} characters")
            limits.check(user_id, room_id)
            reply = await poster.post(user_id=user_id, room_id=room_id, client_id=client_id,
                                      text=text)
        except PostRejected as exc:
            raise ChatRejected(exc.code, exc.message,
                               close_code=CloseCode.POLICY_VIOLATION if exc.close else None
                               ) from None
        return str(reply["id"]), str(reply.get("status", "visible"))  # "held": not shown

    known_rooms: OrderedDict[str, None] = OrderedDict()  # streams seen to exist

    async def room_exists(room_id: str) -> bool:
        if room_id in known_rooms:
            return True
        if await store.get_stream(room_id) is None:
            return False
        known_rooms[room_id] = None
        if len(known_rooms) > 10_000:
            known_rooms.popitem(last=False)
        return True

    async def recent(room_id: str) -> list[dict[str, Any]]:
        return await history(store, room_id, limit=20)

    def deliver(room_id: str, message: dict[str, Any]) -> None:
        gateway.deliver(room_id, [message])

    def deleted(room_id: str, message_id: str) -> None:
        gateway.delete(room_id, message_id)

    def kick(room_id: str, user_id: str) -> None:  # banned: close their sockets in the room
        gateway.disconnect_user(user_id, room_id=room_id, reason="banned")

    def settings(room_id: str, fields: dict[str, Any]) -> None:  # a moderator changed rules
        gateway.update_room(room_id, **fields)
        gateway.notice(room_id, "settings", _settings_text(fields), **fields)

    async def load_settings(room_id: str) -> None:
        """The room's current rules for `joined` frames, when it gets its first viewer."""
        stream = await store.get_stream(room_id)
        if stream is not None:
            gateway.update_room(room_id, **{
                k: v for k, v in room_settings_event(
                    await store.get_room_settings(stream.user_id)).items() if k != "type"})

    # Posts from other processes (over Redis) carry their clocks' stamps: see ChatPoster.
    skew_s = 0.0 if config.chat.bus_url.startswith("memory://") else CLOCK_SKEW_S
    poster = ChatPoster(bus, deliver=deliver, history=recent, deleted=deleted, kick=kick,
                        settings=settings, clock_skew_s=skew_s)
    async with trio.open_nursery() as nursery:

        # One task applies subscribe/unsubscribe in the order rooms fill and empty, so a
        # quick leave-then-join can never end unsubscribed while the room has members.
        # A join carries the moment the room got its first viewer here: the poster catches
        # the room up on messages posted since then, not on older ones (nobody here saw
        # those live; replayed, they would look new to the next viewer).
        room_ops_send, room_ops = trio.open_memory_channel[tuple[str, datetime | None]](
            100_000)

        async def follow_rooms() -> None:
            async for room_id, since in room_ops:
                if since is not None:
                    await load_settings(room_id)  # in place once the room's messages flow
                    await poster.watch(room_id, since=since)
                else:
                    await poster.unwatch(room_id)

        def on_join(room_id: str) -> None:
            room_ops_send.send_nowait((room_id, utcnow()))

        def on_leave(room_id: str) -> None:
            room_ops_send.send_nowait((room_id, None))

        nursery.start_soon(follow_rooms)

        gateway = ChatGateway(on_post=on_post, authenticate=authenticate, on_join=on_join,
                              on_leave=on_leave, room_exists=room_exists,
                              limits=gateway_limits(config.chat))
        model = None
        if config.chat.toxicity_model:
            model = ProfanityCheckModel()
            await trio.to_thread.run_sync(model.load)  # ~1 s of unpickling, off the loop
        moderator = StoreModerator(store, toxicity=model,
                                    refresh_s=config.chat.moderation_refresh_s)
        await nursery.start(poster.run)
        workers: list[ChatWorker] = []  # for /metrics
        for i in range(config.chat.workers):
            worker = ChatWorker(store, bus, moderator)
            workers.append(worker)
            await nursery.start(worker.run, f"{poster.poster_id}-w{i}")
        nursery.start_soon(keys.maintain)

        async def serve(*, task_status: trio.TaskStatus[str]) -> None:
            async with chat_metrics(gateway, workers):
                await serve_chat(gateway, host=config.chat.host, port=config.chat.port,
                                 task_status=task_status)
            nursery.cancel_scope.cancel()  # clients closed after shutdown: stop the workers

        url: str = await nursery.start(serve)
        base = config.chat.public_url or (url if config.chat.port == 0 else config.chat_url)
        log.info("chat gateway at %s (%d workers, bus %s)", base, config.chat.workers,
                 config.chat.bus_url)
        task_status.started(ServiceInfo(name="chat", urls={"ws": base}))
