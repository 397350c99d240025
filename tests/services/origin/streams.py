"""Helpers for the origin tests: real H.264/AAC (the HLS tests' encoder), a step-by-step
live feeder that publishes through the registry, and a raw HTTP/1.1 client."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import trio

from streamscale.protocols.hls import PackagerConfig, Part, Presentation, Rendition, Segment
from streamscale.services.origin import MediaRegistry

RENDITIONS = ("hi", "lo")
FRAMES = 120  # 4 s at 30 fps, a keyframe every second: 1 s segments, 1/3 s parts
PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
# Every playlist body a test receives from an origin, labelled by its request; the
# autouse fixture in conftest checks them all with the strict parser after each test.
SERVED_PLAYLISTS: list[tuple[str, bytes]] = []


def served(label: str, status: int, content_type: bytes | None, body: bytes) -> None:
    """Record a response for strict validation if it is a playlist."""
    if status == 200 and content_type == PLAYLIST_TYPE and body:
        SERVED_PLAYLISTS.append((label, body))


def hls_media() -> ModuleType:
    """tests/protocols/hls/hls_media.py, imported once under its own name."""
    module = sys.modules.get("hls_media")
    if module is None:
        path = Path(__file__).parents[2] / "protocols" / "hls" / "hls_media.py"
        spec = importlib.util.spec_from_file_location("hls_media", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["hls_media"] = module
        spec.loader.exec_module(module)
    return module


class LiveFeeder:
    """Plays the packager: pushes interleaved samples into every rendition, tells the
    registry after each push that returned events, and hands closed segments to `sink`."""

    def __init__(
        self,
        registry: MediaRegistry,
        stream_id: str = "s1",
        config: PackagerConfig | None = None,
        sink: Callable[[Rendition, list[Part | Segment]], None] | None = None,
        frames: int = FRAMES,
    ) -> None:
        media = hls_media()
        self.video = media.encode_video(frames)
        self.audio = media.encode_audio(frames / 30)
        self.registry, self.stream_id, self.sink = registry, stream_id, sink
        self.presentation = Presentation(
            config or PackagerConfig(segment_target_s=1.0, part_target_s=1 / 3)
        )
        self.renditions = [
            self.presentation.add_rendition(
                name, video=self.video.video, audio=self.audio.audio,
                bandwidth_bps=400_000, frame_rate=30.0,
            )
            for name in RENDITIONS
        ]
        items: list[tuple[float, int, Any]] = [
            (s.dts / 90_000, 0, s) for s in self.video.samples
        ] + [(s.dts / self.audio.audio.timescale, 1, s) for s in self.audio.samples]
        items.sort(key=lambda item: (item[0], item[1]))
        self._items = items
        self._next = 0
        registry.publish(stream_id, self.presentation)

    @property
    def hi(self) -> Rendition:
        return self.renditions[0]

    def step(self) -> list[Part | Segment]:
        """Push one sample to every rendition; returns the first rendition's events."""
        t, kind, sample = self._items[self._next]
        self._next += 1
        first: list[Part | Segment] = []
        for i, rendition in enumerate(self.renditions):
            if kind == 0:
                sample = type(sample)(
                    sample.data, sample.dts, sample.pts, sample.keyframe, 1_700_000_000.0 + t
                )
                events = rendition.push_video(sample)
            else:
                events = rendition.push_audio(sample)
            if self.sink is not None and events:
                self.sink(rendition, events)
            if i == 0:
                first = events
        if first:
            self.registry.changed(self.stream_id)
        return first

    def until(self, done: Callable[[list[Part | Segment]], bool]) -> None:
        while not done(self.step()):
            pass

    def parts(self, n: int = 1) -> None:
        """Push until `n` more parts have closed."""
        for _ in range(n):
            self.until(lambda events: any(isinstance(e, Part) for e in events))

    def seconds(self, media_s: float) -> None:
        while self._next < len(self._items) and self._items[self._next][0] < media_s:
            self.step()

    def end(self) -> None:
        while self._next < len(self._items):
            self.step()
        for rendition in self.renditions:
            events = rendition.end()
            if self.sink is not None and events:
                self.sink(rendition, events)
        self.registry.end(self.stream_id)


class RawClient:
    """One TCP connection for raw bytes out (pipelined, malformed) and parsed responses in."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._leftover = b""

    @classmethod
    async def connect(cls, base_url: str) -> RawClient:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        return cls(await trio.open_tcp_stream(host, int(port)))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self, method: str = "GET") -> tuple[h11.Response, bytes] | None:
        """The next response, or None if the server closed the connection first."""
        conn = h11.Connection(h11.CLIENT)  # primed with the request we sent raw
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "origin")]))
        conn.send(h11.EndOfMessage())
        if self._leftover:
            conn.receive_data(self._leftover)  # (b"" would mean EOF)
        head: h11.Response | None = None
        body = b""
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return None  # closed mid-response
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    data = b""
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                self._leftover = conn.trailing_data[0]
                served("raw response", head.status_code, header(head, b"content-type"), body)
                return head, body
            else:
                return None

    async def closed(self) -> bool:
        """True once the server closes (reads until EOF)."""
        while True:
            try:
                if not await self.stream.receive_some(65536):
                    return True
            except trio.BrokenResourceError:
                return True

    async def aclose(self) -> None:
        await self.stream.aclose()


def get(path: str, *, headers: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: origin\r\n%s\r\n" % (path.encode(), headers)


def header(response: h11.Response, name: bytes) -> bytes | None:
    for key, value in response.headers:
        if key == name:
            return bytes(value)
    return None
