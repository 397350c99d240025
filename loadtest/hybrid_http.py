"""The hybrid driver's HTTP/1.1 client: one keep-alive connection, GET only, bodies framed
by Content-Length (what the platform's lean listeners always send).

Leaner than h11 on purpose: the driver's loops on one rendition wake together on each
part, and per-request CPU in that burst becomes the generator's own lag, which the
figures it measures would then carry. h11 (the edge's `Upstream`) spends most of its
~150 us per request validating headers; this parses the status line and two headers.
Anything it does not handle (chunked bodies, no length, a malformed head) is a
`ClientError`, reported by the caller as a failed request, never silently accepted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import trio

_RECV_BYTES = 256 * 1024
_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 64 * 1024 * 1024
_CONNECT_TIMEOUT_S = 2.0


class ClientError(Exception):
    """The connection failed or the answer is not one this client can frame."""


class Connection:
    """GETs over one keep-alive connection, reconnecting when the server closed it."""

    def __init__(self, base_url: str, edge_name: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need http://host:port, not {base_url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._head_tail = (f" HTTP/1.1\r\nhost: {parts.netloc}\r\n"
                           f"x-streamscale-edge: {edge_name}\r\n"
                           f"user-agent: streamscale-hybrid/{edge_name}\r\n\r\n").encode()
        self._stream: trio.SocketStream | None = None
        self._buffer = bytearray()

    async def aclose(self) -> None:
        if self._stream is not None:
            await trio.aclose_forcefully(self._stream)
            self._stream = None

    async def get(self, target: bytes, timeout_s: float) -> tuple[int, bytes]:
        """(status, body) of GET `target`; ClientError (or trio.TooSlowError) if none."""
        with trio.fail_after(timeout_s):
            reused = self._stream is not None
            try:
                return await self._exchange(target)
            except ClientError:
                if not reused:
                    raise
            await self.aclose()  # a kept connection the server closed while idle: once more
            return await self._exchange(target)

    async def _exchange(self, target: bytes) -> tuple[int, bytes]:
        if self._stream is None:
            self._buffer.clear()
            try:
                with trio.fail_after(_CONNECT_TIMEOUT_S):
                    self._stream = await trio.open_tcp_stream(self._host, self._port)
            except (OSError, trio.TooSlowError) as exc:
                raise ClientError(f"cannot connect: {exc}") from exc
        try:
            await self._stream.send_all(b"GET " + target + self._head_tail)
            status, length, close = await self._head()
            body = await self._read(length)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await self.aclose()
            raise ClientError(f"connection broken: {exc}") from exc
        except ClientError:
            await self.aclose()
            raise
        if close:
            await self.aclose()
        return status, body

    async def _fill(self) -> None:
        assert self._stream is not None
        data = await self._stream.receive_some(_RECV_BYTES)
        if not data:
            raise ClientError("closed by the server")
        self._buffer += data

    async def _head(self) -> tuple[int, int, bool]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES:
                raise ClientError("response head too long")
            await self._fill()
        head = bytes(self._buffer[:end]).lower()
        del self._buffer[: end + 4]
        lines = head.split(b"\r\n")
        fields = lines[0].split(b" ", 2)
        if len(fields) < 2 or not fields[0].startswith(b"http/1.") or not fields[1].isdigit():
            raise ClientError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        length: int | None = None
        close = fields[0] == b"http/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit():
                    raise ClientError("bad content-length")
                length = int(value)
            elif name == b"transfer-encoding":
                raise ClientError("transfer-encoding is not supported by this client")
            elif name == b"connection" and b"close" in value:
                close = True
        if length is None or length > _MAX_BODY_BYTES:
            raise ClientError("no usable content-length")
        return int(fields[1]), length, close

    async def _read(self, length: int) -> bytes:
        while len(self._buffer) < length:
            await self._fill()
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return body
