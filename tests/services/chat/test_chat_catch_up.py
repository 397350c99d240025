"""The gateway's catch-up from history (`ChatPoster`) on the in-process bus: it fills only
what a room's viewers here could have missed, keeps the room's order, and one room's slow
history query never holds back the other rooms (or the posts' answers)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import trio
import trio.testing

from streamscale.backends.bus import MemoryBus, Message
from streamscale.services.chat.pipeline import ChatPoster, room_topic
from streamscale.services.clock import utcnow


def body(room: str, seq: int, at: datetime) -> dict[str, Any]:
    return {"id": f"{room}-{seq}", "seq": seq, "room": room, "user_id": "u", "username": "ann",
            "text": f"{room} {seq}", "at": at.isoformat().replace("+00:00", "Z")}


def event(message: dict[str, Any]) -> bytes:
    return json.dumps({"type": "message", "message": message}).encode()


async def test_a_slow_catch_up_holds_back_only_its_own_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = MemoryBus(subscriber_buffer=1)
    joined = utcnow()
    before, after = joined - timedelta(seconds=5), joined + timedelta(milliseconds=1)
    stored = {"x": [], "y": []}  # what the history query answers, oldest first
    x_store_slow = False
    release_x = trio.Event()
    delivered: list[str] = []
    arrived = {"y-3": trio.Event(), "y-4": trio.Event()}

    async def history(room: str) -> list[dict[str, Any]]:
        answer = list(stored[room])  # as the query saw it
        if room == "x" and x_store_slow:
            await release_x.wait()
        return answer

    def deliver(room: str, message: dict[str, Any]) -> None:
        delivered.append(message["id"])
        if message["id"] in arrived:
            arrived[message["id"]].set()

    async def post(message: dict[str, Any]) -> None:  # as a worker does: persist, publish
        stored[message["room"]].append(message)
        await bus.publish(room_topic(message["room"]), event(message))

    poster = ChatPoster(bus, deliver=deliver, history=history)
    async with trio.open_nursery() as nursery:
        await nursery.start(poster.run)
        await poster.watch("x", since=joined)
        await poster.watch("y", since=joined)
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == []

        # x: one message from before the room's first viewer came (nobody here saw it,
        # and nobody here should now), one since (missed before the subscription went
        # live). y: three messages at once overflow the gateway's subscription buffer.
        stored["x"] = [body("x", 1, before), body("x", 2, after)]
        stored["y"] = [body("y", n, after) for n in (1, 2, 3)]
        x_store_slow = True
        [subscription] = bus.subscribers[room_topic("y")]
        for message in stored["y"]:  # no checkpoint between: one waits, the third is lost
            subscription.deliver(Message(topic=room_topic("y"), payload=event(message)))

        # The Resync catches both rooms up; x's store query hangs, y's does not.
        with trio.fail_after(60):  # mock time: jumps at once if a message is stuck
            await arrived["y-3"].wait()
            await post(body("x", 3, after))  # held back: x's history comes first
            await post(body("y", 4, after))
            await arrived["y-4"].wait()
        assert delivered == ["y-1", "y-2", "y-3", "y-4"], delivered  # the lost one filled in

        release_x.set()
        await trio.testing.wait_all_tasks_blocked()
        assert delivered[4:] == ["x-2", "x-3"]  # history first, then the held-back live one
        nursery.cancel_scope.cancel()


async def test_a_room_watched_again_is_not_replayed_to_its_new_viewers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = MemoryBus()
    stored: list[dict[str, Any]] = []
    delivered: list[str] = []

    async def history(room: str) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        return list(stored)

    poster = ChatPoster(bus, deliver=lambda room, m: delivered.append(m["id"]),
                        history=history)
    async with trio.open_nursery() as nursery:
        await nursery.start(poster.run)
        first_viewer = utcnow()
        await poster.watch("x", since=first_viewer)
        await trio.testing.wait_all_tasks_blocked()
        stored.append(body("x", 1, first_viewer + timedelta(milliseconds=1)))
        await bus.publish(room_topic("x"), event(stored[-1]))
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == ["x-1"]
        await poster.unwatch("x")  # the room emptied here

        stored.append(body("x", 2, first_viewer + timedelta(milliseconds=2)))  # nobody here
        await poster.watch("x", since=first_viewer + timedelta(milliseconds=3))
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == ["x-1"]
        nursery.cancel_scope.cancel()
