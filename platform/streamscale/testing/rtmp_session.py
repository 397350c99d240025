"""A scripted RTMP publisher over a real socket: `ClientConnection` driven on trio.

For tests that need what ffmpeg cannot do on demand (codecs it does not send, a reset in
the middle of a publish, ...):

    async with await publish_session(host, port, key) as session:
        await session.stream.send_all(session.client.video(session.sid, 0, payload))
        status = await session.command(lambda c: c.name == "onStatus")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import trio

from streamscale.protocols.rtmp import NEED_DATA

from .rtmp_client import ClientConnection, ServerCommand

RECEIVE_BYTES = 65536


@dataclass
class PublishSession:
    """A publish the server has accepted (NetStream.Publish.Start): socket, client, stream id."""

    stream: trio.SocketStream
    client: ClientConnection
    sid: int

    async def command(self, until: Callable[[ServerCommand], bool]) -> ServerCommand:
        """Read the server until a command matches; the server may close right after it."""
        return await _command(self.stream, self.client, until)

    async def __aenter__(self) -> PublishSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stream.aclose()


async def _command(stream: trio.SocketStream, client: ClientConnection,
                   until: Callable[[ServerCommand], bool]) -> ServerCommand:
    while True:
        event = client.next_event()
        if event is NEED_DATA:
            out = client.data_to_send()
            if out:
                await stream.send_all(out)
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                raise AssertionError("the server closed the connection first")
            client.receive_data(data)
        elif isinstance(event, ServerCommand) and until(event):
            return event


async def publish_session(host: str, port: int, key: str, *, app: str = "live"
                          ) -> PublishSession:
    """Handshake, connect, createStream and publish `key`; returns once it is accepted."""
    client = ClientConnection()
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(client.initiate())
        while not (c2 := client.data_to_send()):  # the handshake: S0 S1 S2 in, C2 out
            client.receive_data(await stream.receive_some(RECEIVE_BYTES))
            if client.next_event() is not NEED_DATA:
                raise AssertionError("a server message before the handshake completed")
        await stream.send_all(c2)
        await stream.send_all(client.connect(app, f"rtmp://{host}:{port}/{app}"))
        await _command(stream, client, lambda c: c.name == "_result")
        await stream.send_all(client.create_stream())
        created = await _command(stream, client, lambda c: c.name == "_result")
        sid = int(created.args[0]) if created.args and isinstance(created.args[0], float) else 1
        await stream.send_all(client.publish(sid, key))
        await _command(stream, client, lambda c: c.status_code == "NetStream.Publish.Start")
    except BaseException:
        await stream.aclose()
        raise
    return PublishSession(stream, client, sid)
