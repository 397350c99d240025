"""The chat gateway over real sockets, on a MockClock: rooms, auth, bad input, close codes."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from streamscale.protocols.chat import CloseCode
from streamscale.services.chat.fanout import ChatLimits, ChatRejected
from streamscale.testing.ws_client import ChatClient, WebSocketRejected, open_chat_client

from .conftest import Chat, open_chat


async def messages(client: ChatClient, count: int) -> list[dict[str, Any]]:
    """The next `count` chat messages, across however many batches carry them."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        got += (await client.receive_type("batch"))["messages"]
    assert len(got) == count
    return got


async def test_two_clients_see_each_others_messages_in_order(chat: Chat) -> None:
    async with (open_chat_client(chat.url) as ann, open_chat_client(chat.url) as bob):
        joined = await ann.join("s1", "tok-ann")
        assert joined["user"] == "ann" and joined["can_post"] is True
        await bob.join("s1", "tok-bob")
        for i, (client, name) in enumerate([(ann, "a"), (bob, "b"), (ann, "c"), (ann, "d")]):
            ack = await client.post(f"c{i}", f"from {name}")
            assert ack["type"] == "ack" and ack["message_id"] == f"m{i}"
        expected = ["from a", "from b", "from c", "from d"]
        for client in (ann, bob):
            assert [m["text"] for m in await messages(client, 4)] == expected
        assert (await messages(bob, 0)) == []
    assert chat.pipeline.joined == ["s1"]


async def test_retried_client_id_acks_again_but_delivers_once(chat: Chat) -> None:
    async with open_chat_client(chat.url) as ann:
        await ann.join("s1", "tok-ann")
        first = await ann.post("same", "hello")
        again = await ann.post("same", "hello")
        assert first["message_id"] == again["message_id"]
        await ann.post("next", "world")
        assert [m["text"] for m in await messages(ann, 2)] == ["hello", "world"]


async def test_anonymous_reader_reads_but_cannot_post(chat: Chat) -> None:
    async with (open_chat_client(chat.url) as ann, open_chat_client(chat.url) as anon):
        joined = await anon.join("s1")
        assert joined["user"] is None and joined["can_post"] is False
        refused = await anon.post("c1", "let me in")
        assert (refused["type"], refused["code"], refused["id"]) == ("error", "auth_required", "c1")
        await ann.join("s1", "tok-ann")
        await ann.post("c2", "hi all")
        assert [m["text"] for m in await messages(anon, 1)] == ["hi all"]
        assert chat.pipeline.posted == [("ann", "s1", "c2", "hi all")]


async def test_post_before_join_and_leave(chat: Chat) -> None:
    async with open_chat_client(chat.url) as ann:
        error = await ann.post("c1", "hello?")
        assert error["code"] == "not_joined"
        await ann.join("s1", "tok-ann")
        await ann.send_text('{"v":1,"type":"leave"}')
        assert (await ann.post("c2", "gone"))["code"] == "not_joined"
        assert chat.pipeline.left == ["s1"]


@pytest.mark.parametrize(("raw", "code"), [
    ("not json", "invalid_json"),
    ('{"v":1,"type":"shout","room":"s1"}', "unknown_type"),
    ('{"v":9,"type":"ping"}', "unsupported_version"),
    ('{"v":1,"type":"send","id":"c7","text":"bell\\u0007"}', "invalid_text"),
    ('{"v":1,"type":"send","id":"c7","text":"hi","extra":1}', "invalid_frame"),
])
async def test_malformed_frames_get_an_error_frame_and_others_see_nothing(
    chat: Chat, raw: str, code: str
) -> None:
    async with (open_chat_client(chat.url) as ann, open_chat_client(chat.url) as bad,
                open_chat_client(chat.url) as watcher):
        await watcher.join("s1")
        await ann.join("s1", "tok-ann")
        await bad.join("s1", "tok-bob")
        await bad.send_text(raw)
        error = await bad.receive()
        assert (error["type"], error["code"]) == ("error", code)
        assert error["id"] == ("c7" if '"c7"' in raw else None)
        assert (await bad.post("ok", "still here"))["type"] == "ack"  # the connection lives
        await ann.post("c1", "after")
        seen: list[str] = []
        while len(seen) < 2:  # only batches reach the watcher, nothing of the bad frame
            frame = await watcher.receive()
            assert frame["type"] == "batch"
            seen += [m["text"] for m in frame["messages"]]
        assert seen == ["still here", "after"]


@pytest.mark.parametrize(("send", "code"), [
    (lambda c: c.send_binary(b"\x00\x01"), CloseCode.UNSUPPORTED_DATA),
    (lambda c: c.send_text("x" * 5000), CloseCode.MESSAGE_TOO_BIG),
    (lambda c: c.send_text('{"v":1,"type":"send","id":"c1","text":"hi","user":"ann"}'),
     CloseCode.POLICY_VIOLATION),
    (lambda c: c.send_text('{"v":1,"type":"join","room":"s1","token":"forged"}'),
     CloseCode.AUTH_FAILED),
])
async def test_refused_input_closes_with_the_documented_code(
    chat: Chat, send: Any, code: int
) -> None:
    async with (open_chat_client(chat.url) as bad, open_chat_client(chat.url) as watcher):
        await watcher.join("s1")
        await bad.join("s1", "tok-bob")
        await send(bad)
        assert await bad.expect_close() == code
        chat.gateway.deliver("s1", [{"id": "x", "text": "after"}])
        frame = await watcher.receive()
        assert frame["type"] == "batch" and frame["messages"][0]["text"] == "after"
    assert chat.gateway.stats.closes[code] == 1


async def test_upgrade_elsewhere_is_refused(chat: Chat) -> None:
    with pytest.raises(WebSocketRejected) as info:
        await ChatClient.connect(chat.url.replace("/chat", "/nope"))
    assert info.value.status == 404
    async with open_chat_client(chat.url + "?room=ignored") as ok:
        assert (await ok.join("s1"))["room"] == "s1"


async def test_pipeline_rejections(chat: Chat) -> None:
    def reject(user: str, text: str) -> ChatRejected | None:
        if text == "too soon":
            return ChatRejected("slow_mode", "wait 5 s")
        if text == "bad words":
            return ChatRejected("banned", "you are banned", close_code=CloseCode.POLICY_VIOLATION)
        return None

    chat.pipeline.reject = reject
    async with open_chat_client(chat.url) as ann:
        await ann.join("s1", "tok-ann")
        error = await ann.post("c1", "too soon")
        assert (error["code"], error["message"], error["id"]) == ("slow_mode", "wait 5 s", "c1")
        error = await ann.post("c2", "bad words")
        assert error["code"] == "banned"
        assert await ann.expect_close() == CloseCode.POLICY_VIOLATION


async def test_frame_rate_limit_then_flood_close(autojump_clock: trio.testing.MockClock) -> None:
    limits = ChatLimits(frames_per_s=1, frames_burst=3, flood_close_after=4)
    async with open_chat(limits) as chat, open_chat_client(chat.url) as client:
        for _ in range(5):
            await client.send_text('{"v":1,"type":"ping","id":"p"}')
        kinds = [(await client.receive())["type"] for _ in range(5)]
        assert kinds == ["pong"] * 3 + ["error"] * 2
        await trio.sleep(1.0)  # one token back
        await client.send_text('{"v":1,"type":"ping"}')
        assert (await client.receive())["type"] == "pong"
        for _ in range(6):
            await client.send_text('{"v":1,"type":"ping"}')
        assert await client.expect_close() == CloseCode.POLICY_VIOLATION


async def test_moderation_frames_follow_the_batch(chat: Chat) -> None:
    async with (open_chat_client(chat.url) as ann, open_chat_client(chat.url) as bob):
        await ann.join("s1", "tok-ann")
        await bob.join("s1", "tok-bob")
        chat.gateway.deliver("s1", [{"id": "m1", "text": "oops"}])
        chat.gateway.delete("s1", "m1")
        chat.gateway.notice("s1", "timeout", "10 minutes", user_id="bob", user="bob")
        assert (await ann.receive())["type"] == "batch"
        frame = await ann.receive()
        assert frame["type"] == "deleted", frame
        assert [(await bob.receive())["type"] for _ in range(3)] == ["batch", "deleted", "notice"]
        assert chat.gateway.disconnect_user("bob") == 1
        assert await bob.expect_close() == CloseCode.POLICY_VIOLATION
        chat.gateway.update_room("s1", slow_mode_s=30)
        assert (await ann.join("s1", "tok-ann"))["slow_mode_s"] == 30


async def test_shutdown_closes_with_going_away(autojump_clock: trio.testing.MockClock) -> None:
    async with open_chat() as chat, open_chat_client(chat.url) as client:
        await client.join("s1")
        chat.shutdown.set()
        assert await client.expect_close() == CloseCode.GOING_AWAY


async def test_frames_pipelined_with_the_upgrade_request_are_kept(chat: Chat) -> None:
    """wsproto's server side drops them; a client that does not wait for the 101 works."""
    port = int(chat.url.split(":")[2].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    payload = b'{"v":1,"type":"join","room":"s1"}'
    mask = b"\x01\x02\x03\x04"
    frame = bytes((0x81, 0x80 | len(payload))) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    await stream.send_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        + frame)
    received = b""
    while b'"type":"joined"' not in received:
        received += await stream.receive_some(4096)
    assert received.startswith(b"HTTP/1.1 101 ")
    await stream.aclose()
