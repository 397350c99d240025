"""The fan-out engine: one frame per room per interval, sampling past the per-viewer cap,
and a reader who cannot keep up is dropped (1013) while the room keeps its pace."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from streamscale.protocols.chat import CloseCode
from streamscale.services.chat.fanout import ChatLimits
from streamscale.testing.ws_client import ChatClient, open_chat_client

from .conftest import open_chat


async def test_messages_within_one_interval_arrive_as_one_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (open_chat(ChatLimits(batch_interval_s=1.0)) as chat,
                open_chat_client(chat.url) as client):
        await client.join("s1")
        chat.gateway.deliver("s1", [{"id": "first"}])
        first = await client.receive()  # after a quiet spell, the first batch leaves at once
        sent_at = trio.current_time()
        assert [m["id"] for m in first["messages"]] == ["first"]
        for k in range(5):
            chat.gateway.deliver("s1", [{"id": f"k{k}"}])
            await trio.sleep(0.1)
        batch = await client.receive()
        assert [m["id"] for m in batch["messages"]] == [f"k{k}" for k in range(5)]
        assert batch["skipped"] == 0
        assert trio.current_time() - sent_at >= 1.0
        assert chat.gateway.stats.batches == 2
        assert chat.gateway.stats.deliveries == 6


async def test_sampling_past_the_per_viewer_cap(autojump_clock: trio.testing.MockClock) -> None:
    limits = ChatLimits(viewer_cap_per_s=10, batch_interval_s=0.1)
    async with open_chat(limits) as chat, open_chat_client(chat.url) as client:
        await client.join("s1")
        chat.gateway.deliver("s1", [{"id": i} for i in range(50)])
        batch = await client.receive()
        assert [m["id"] for m in batch["messages"]] == list(range(0, 50, 5))  # evenly spread
        assert batch["skipped"] == 40
        await trio.sleep(1.0)  # the bucket refills
        chat.gateway.deliver("s1", [{"id": f"b{i}"} for i in range(5)])  # ids are unique
        batch = await client.receive()
        assert (len(batch["messages"]), batch["skipped"]) == (5, 0)

        sent = 0  # a steady 100 messages/s for 3 s: ~10/s get through, the rest are counted
        async with trio.open_nursery() as nursery:
            async def flood() -> None:
                nonlocal sent
                for _ in range(300):
                    chat.gateway.deliver("s1", [{"id": 1000 + sent}])
                    sent += 1
                    await trio.sleep(0.01)
                await trio.sleep(1.0)
                chat.gateway.deliver("s1", [{"id": "end"}])

            nursery.start_soon(flood)
            seen, skipped = [], 0
            while not seen or seen[-1] != "end":
                batch = await client.receive()
                seen += [m["id"] for m in batch["messages"]]
                skipped += batch["skipped"]
        assert len(seen) - 1 + skipped == sent
        assert 25 <= len(seen) <= 45
        assert seen[:-1] == sorted(seen[:-1])


async def test_slow_client_is_dropped_and_the_room_keeps_its_pace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = ChatLimits(send_queue_frames=4, send_buffer_bytes=4096, viewer_cap_per_s=0,
                        batch_interval_s=0.05)
    count = 200
    async with open_chat(limits) as chat, open_chat_client(chat.url) as fast:
        slow = await ChatClient.connect(chat.url, receive_buffer_bytes=4096)
        await slow.join("s1")  # and then never reads
        await fast.join("s1")
        lags: list[float] = []
        got: list[Any] = []

        async def read_fast() -> None:
            while len(got) < count:
                for message in (await fast.receive_type("batch"))["messages"]:
                    lags.append(trio.current_time() - message["ts"])
                    got.append(message["id"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_fast)
            for i in range(count):
                message = {"id": i, "ts": trio.current_time(), "pad": "x" * 1000}
                chat.gateway.deliver("s1", [message])
                await trio.sleep(limits.batch_interval_s)
        assert got == list(range(count))
        assert max(lags) <= limits.batch_interval_s
        assert chat.gateway.stats.dropped_slow == 1
        assert len(chat.gateway.rooms["s1"].members) == 1
        assert await slow.expect_close() == CloseCode.TRY_AGAIN_LATER  # ahead of its backlog
        await slow.aclose()


async def test_room_hooks_on_first_join_and_last_leave(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_chat() as chat:
        async with open_chat_client(chat.url) as a:
            async with open_chat_client(chat.url) as b:
                await a.join("s1")
                await b.join("s1")
                await a.join("s2")  # moves: s1 still has b
                assert chat.pipeline.joined == ["s1", "s2"]
                assert chat.pipeline.left == []
            await trio.testing.wait_all_tasks_blocked()
            assert chat.pipeline.left == ["s1"]
        await trio.testing.wait_all_tasks_blocked()
        assert chat.pipeline.left == ["s1", "s2"]
        assert chat.gateway.rooms == {}
        assert chat.gateway.stats.closes[CloseCode.NORMAL] == 2


async def test_rebroadcast_message_ids_are_delivered_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_chat() as chat, open_chat_client(chat.url) as client:
        await client.join("s1")
        chat.gateway.deliver("s1", [{"id": "m1"}, {"id": "m2"}])
        chat.gateway.deliver("s1", [{"id": "m2"}, {"id": "m3"}, {"id": "m1"}])
        seen: list[str] = []
        while len(seen) < 3:
            seen += [m["id"] for m in (await client.receive())["messages"]]
        assert seen == ["m1", "m2", "m3"]
