"""One gateway process's went-live fan-out: the bus topic in, each connected follower out.

Every gateway process subscribes to `events.TOPIC` once (on its first notification
connection) and, per event, asks the store which of the users connected *here* follow the
streamer (`followers_among`, or the streamer's followers when those are fewer), then
offers the event to each of their connections.

Offering never waits: each connection has a bounded queue (`queue_events`). A connection
whose queue is full is dropped: its queue is closed and its TCP connection shut down
(`_abort`: the server's write to a client that stopped reading would otherwise stay
parked), and it is counted in `dropped`. A slow or dead client therefore costs its own
notifications, never anyone else's, and never holds the feed up.
The client reconnects with Last-Event-ID and is replayed what is still live.

If the subscription ends (broker lost, or shutdown), every connection is closed too, so
clients reconnect and the next connection subscribes again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Final

import trio

from ...backends.bus import Bus, Message, Resync
from ...backends.storage import Store
from .events import TOPIC, WentLive

log = logging.getLogger(__name__)


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RESYNC: Final = _Marker("RESYNC")  # events may have been lost: refetch the live list
CLOSED: Final = _Marker("CLOSED")  # the connection's queue is closed (dropped or shutdown)

Item = WentLive | _Marker
STUCK_GRACE_S = 0.5  # on shutdown: connections not gone by then are stuck, and aborted


class Listener:
    """One notification connection: a bounded queue the feed offers to without waiting."""

    def __init__(self, user_id: str, queue_events: int,
                 abort: Callable[[], object] | None = None) -> None:
        self.user_id = user_id
        self.dropped = False
        self.abort = abort  # closes the client's connection (blocking: run in a thread)
        self._send, self._receive = trio.open_memory_channel[Item](queue_events)

    def offer(self, item: Item) -> None:
        """Queue `item`; if the queue is full, drop the connection instead of waiting."""
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self.dropped = True
            self._send.close()
        except trio.ClosedResourceError:
            pass

    def close(self) -> None:
        self._send.close()

    async def next(self) -> Item:
        """The next queued item, or CLOSED once the queue is closed and drained."""
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            return CLOSED


class LiveFeed:
    def __init__(self, store: Store, bus: Bus, *, queue_events: int = 64,
                 follower_side_from: int = 1000) -> None:
        self._store = store
        self._bus = bus
        self.queue_events = queue_events
        # Past this many connected users, count the streamer's followers first and, if
        # fewer, read those instead (most streamers have far fewer followers than a busy
        # gateway has connections).
        self.follower_side_from = follower_side_from
        self._listeners: dict[str, set[Listener]] = {}
        self._running = False
        self._nursery: trio.Nursery | None = None  # the running feed's: aborts run there
        self._start_lock = trio.Lock()
        self.delivered = 0  # events queued for a connection
        self.dropped = 0  # connections dropped because their queue was full

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._listeners.values())

    def connections_of(self, user_id: str) -> int:
        return len(self._listeners.get(user_id, ()))

    async def ensure_running(self, nursery: trio.Nursery, shutdown: trio.Event) -> None:
        """Subscribe (in `nursery`) unless subscribed; returns once events published from
        now on will arrive. BusError if the broker cannot be reached."""
        async with self._start_lock:
            if not self._running:
                await nursery.start(self._run, shutdown)

    @contextmanager
    def listen(self, user_id: str, *, abort: Callable[[], object] | None = None
               ) -> Iterator[Listener]:
        """Register a connection; `abort` (blocking) closes it if it is dropped."""
        listener = Listener(user_id, self.queue_events, abort)
        if not self._running:  # the subscription ended meanwhile: reconnect to restart it
            listener.close()
        self._listeners.setdefault(user_id, set()).add(listener)
        try:
            yield listener
        finally:
            mine = self._listeners.get(user_id)
            if mine is not None:
                mine.discard(listener)
                if not mine:
                    del self._listeners[user_id]
            listener.close()

    async def _run(self, shutdown: trio.Event, *,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with self._bus.subscribe(TOPIC) as subscription, trio.open_nursery() as inner:
                self._running = True
                self._nursery = inner
                task_status.started()

                async def stop_on_shutdown() -> None:
                    await shutdown.wait()
                    self._close_all()  # each response ends once its client has read it
                    await trio.sleep(STUCK_GRACE_S)
                    # Those still here are parked writing to a client that does not read:
                    # the server's graceful shutdown would wait for them.
                    aborts = [listener.abort for listeners in self._listeners.values()
                              for listener in listeners if listener.abort is not None]
                    if aborts:
                        await trio.to_thread.run_sync(lambda: [abort() for abort in aborts])
                    inner.cancel_scope.cancel()

                inner.start_soon(stop_on_shutdown)
                async for item in subscription:
                    if isinstance(item, Resync):
                        log.warning("went-live events may have been lost: asking clients to "
                                    "refetch the live list")
                        self._offer_all(RESYNC)
                    elif isinstance(item, Message):
                        await self._deliver(item)
                inner.cancel_scope.cancel()
        finally:
            self._running = False
            self._nursery = None
            self._close_all()

    def _close_all(self) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.close()

    async def _deliver(self, message: Message) -> None:
        try:
            event = WentLive.decode(message.payload)
        except ValueError as exc:
            log.warning("ignored a message on %s: %s", TOPIC, exc)
            return
        connected = [uid for uid in self._listeners if uid != event.user_id]
        if not connected:
            return
        for user_id in await self._followers_connected(event.user_id, connected):
            for listener in list(self._listeners.get(user_id, ())):
                listener.offer(event)
                if listener.dropped:
                    self._forget_dropped(listener)
                else:
                    self.delivered += 1

    async def _followers_connected(self, user_id: str, connected: list[str]) -> set[str]:
        """Which of `connected` follow `user_id`, from whichever side is smaller."""
        if len(connected) > self.follower_side_from:
            followers = await self._store.count_followers(user_id)
            if followers < len(connected):
                here = set(connected)
                found: set[str] = set()
                cursor: str | None = None
                while True:
                    page = await self._store.list_followers(user_id, cursor=cursor, limit=1000)
                    found.update(f.follower_id for f in page.items if f.follower_id in here)
                    if page.next_cursor is None:
                        return found
                    cursor = page.next_cursor
        return await self._store.followers_among(user_id, connected)

    def _offer_all(self, item: Item) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.offer(item)
                if listener.dropped:
                    self._forget_dropped(listener)

    def _forget_dropped(self, listener: Listener) -> None:
        mine = self._listeners.get(listener.user_id)
        if mine is not None and listener in mine:
            mine.discard(listener)
            if not mine:
                del self._listeners[listener.user_id]
            self.dropped += 1
            log.info("notification connection of %s dropped: %d events queued unread",
                     listener.user_id, self.queue_events)
            if listener.abort is not None and self._nursery is not None:
                self._nursery.start_soon(partial(trio.to_thread.run_sync, listener.abort))
