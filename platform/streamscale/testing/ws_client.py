"""A small WebSocket chat client on trio + wsproto, for tests and benches.

Deliberately built on wsproto's client side rather than the gateway's own frame code, so
tests check the gateway's hand-built frames against an independent implementation.
"""

from __future__ import annotations

import json
import socket
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from streamscale.protocols.chat import encode_join, encode_send, parse_server_frame

__all__ = ["ChatClient", "ChatClosed", "WebSocketRejected", "open_chat_client"]


class ChatClosed(Exception):
    """The server closed the WebSocket (code, reason); 1006 if it just went away."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class WebSocketRejected(Exception):
    """The HTTP upgrade was refused with `status`."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ChatClient:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self._texts: deque[str] = deque()
        self._parts: list[str] = []
        self._stash: deque[dict[str, Any]] = deque()  # frames passed over by receive_type
        self.closed: ChatClosed | None = None

    @classmethod
    async def connect(cls, url: str, *, receive_buffer_bytes: int | None = None) -> ChatClient:
        """Open `ws://host:port/path?query`; a small receive buffer makes a slow reader."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = trio.socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        if receive_buffer_bytes is not None:  # before connect, so the window starts small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        await sock.connect((host, port))
        stream = trio.SocketStream(sock)
        ws = WSConnection(ConnectionType.CLIENT)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        await stream.send_all(ws.send(Request(host=f"{host}:{port}", target=target)))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise WebSocketRejected(0)
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    client = cls(stream, ws)
                    client._absorb()  # frames that arrived with the 101
                    return client
                if isinstance(event, RejectConnection | RejectData):
                    status = getattr(event, "status_code", 0)
                    await stream.aclose()
                    raise WebSocketRejected(status)

    async def send_text(self, text: str | bytes) -> None:
        """Send one text message as is (bytes are decoded as UTF-8 first)."""
        if isinstance(text, bytes):
            text = text.decode()
        await self.stream.send_all(self.ws.send(Message(data=text)))

    async def send_binary(self, data: bytes) -> None:
        await self.stream.send_all(self.ws.send(Message(data=data)))

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send_text(json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        """The next server frame as a dict; raises `ChatClosed` once the server closed."""
        if self._stash:
            return self._stash.popleft()
        while not self._texts:
            if self.closed is not None:
                raise self.closed
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                self.closed = self.closed or ChatClosed(1006)
                continue
            self.ws.receive_data(data)
            await self._answer(self._absorb())
        return parse_server_frame(self._texts.popleft())

    async def receive_type(self, kind: str, client_id: str | None = None) -> dict[str, Any]:
        """The next frame of `kind` (and `id`), keeping the others for `receive` in order."""
        kept: list[dict[str, Any]] = []
        try:
            while True:
                frame = await self.receive()
                if frame["type"] == kind and (client_id is None or frame.get("id") == client_id):
                    return frame
                kept.append(frame)
        finally:
            self._stash.extendleft(reversed(kept))

    async def expect_close(self) -> int:
        """Read (and discard) frames until the server closes; its close code."""
        try:
            while True:
                await self.receive()
        except ChatClosed as closed:
            return closed.code

    async def join(self, room: str, token: str | None = None) -> dict[str, Any]:
        await self.send_text(encode_join(room, token))
        return await self.receive_type("joined")

    async def post(self, client_id: str, text: str) -> dict[str, Any]:
        """Send a message; its ack or error (frames received meanwhile stay queued)."""
        await self.send_text(encode_send(client_id, text))
        kept: list[dict[str, Any]] = []
        try:
            while True:
                frame = await self.receive()
                if frame["type"] in ("ack", "error") and frame.get("id") == client_id:
                    return frame
                kept.append(frame)
        finally:
            self._stash.extendleft(reversed(kept))

    async def aclose(self) -> None:
        if self.closed is None:
            try:
                await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
                with trio.move_on_after(2):
                    await self.expect_close()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await self.stream.aclose()

    def _absorb(self) -> list[bytes]:
        """Collect complete text messages; note a close; return control replies to send."""
        replies = []
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    self._texts.append("".join(self._parts))
                    self._parts.clear()
            elif isinstance(event, BytesMessage):
                raise AssertionError("the chat server sent a binary frame")
            elif isinstance(event, Ping):
                replies.append(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = ChatClosed(event.code, event.reason or "")
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    replies.append(self.ws.send(event.response()))
        return replies

    async def _answer(self, replies: list[bytes]) -> None:
        for data in replies:
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.stream.send_all(data)


@asynccontextmanager
async def open_chat_client(url: str, **kwargs: Any) -> AsyncIterator[ChatClient]:
    client = await ChatClient.connect(url, **kwargs)
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
