"""The bench's publisher: a pre-encoded clip sent over RTMP in real time, as OBS would.

The clip (lavfi testsrc2, 720p30, libx264 zerolatency, AAC) is encoded once with the
ffmpeg CLI into bench/out/ and read back with PyAV; the sans-I/O client in
streamscale.testing.rtmp_client frames it. Each video frame's publish time is its place
on the publisher's real-time schedule (start + dts), so a server that pushes back on the
socket shows up as latency instead of hiding it.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import trio

from streamscale.protocols.rtmp import NEED_DATA
from streamscale.testing.rtmp_client import (
    ClientConnection,
    ServerCommand,
    aac_frame,
    aac_sequence_header,
    avc_sequence_header,
    avc_video,
)

FFMPEG = "/usr/bin/ffmpeg"
FPS = 30
WIDTH, HEIGHT = 1280, 720


@dataclass(frozen=True)
class Clip:
    avc_record: bytes
    asc: bytes
    packets: list[tuple[int, str, bytes]]  # (dts ms, "video" | "audio", FLV tag body)


def make_clip(out_dir: Path, *, gop_s: float, seconds: float) -> Path:
    """testsrc2 720p30 + a sine, libx264 veryfast zerolatency, fixed GOP (no scenecut)."""
    gop = round(gop_s * FPS)
    path = out_dir / f"g2g_720p30_gop{gop}_{seconds:g}s.flv"
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [FFMPEG, "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "veryfast",
             "-tune", "zerolatency", "-g", str(gop), "-keyint_min", str(gop),
             "-sc_threshold", "0", "-b:v", "3500k", "-maxrate", "3500k", "-bufsize", "3500k",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path)],
            check=True,
        )  # fmt: skip
    return path


def _nal_units(avcc: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 4 <= len(avcc):
        size = int.from_bytes(avcc[pos : pos + 4], "big")
        out.append(avcc[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


def read_clip(path: Path) -> Clip:
    packets: list[tuple[int, str, bytes]] = []
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        record = bytes(video.codec_context.extradata or b"")
        asc = bytes(audio.codec_context.extradata or b"")
        for p in container.demux(video, audio):
            if not p.size or p.dts is None:
                continue
            dts_ms = int(p.dts * p.time_base * 1000)
            if p.stream.type == "video":
                cts = int(((p.pts or p.dts) - p.dts) * p.time_base * 1000)
                body = avc_video(_nal_units(bytes(p)), keyframe=bool(p.is_keyframe),
                                 composition_time_ms=cts)
                packets.append((dts_ms, "video", body))
            else:
                packets.append((dts_ms, "audio", aac_frame(bytes(p))))
    packets.sort(key=lambda x: (x[0], x[1] != "video"))
    return Clip(record, asc, packets)


@dataclass
class Published:
    sent_s: dict[int, float] = field(default_factory=dict)  # video dts ms -> monotonic s
    late_s: list[float] = field(default_factory=list)  # send_all done - schedule
    start_s: float = 0.0


class _Session:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = ClientConnection()

    async def send(self, data: bytes) -> None:
        if data:
            await self.stream.send_all(data)

    async def receive(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("server closed the RTMP connection")
        self.conn.receive_data(data)

    async def until(self, name: str, min_tid: float = 0.0) -> ServerCommand:
        while True:
            event = self.conn.next_event()
            await self.send(self.conn.data_to_send())
            if event is NEED_DATA:
                await self.receive()
            elif isinstance(event, ServerCommand):
                if event.name == "_error" or (event.status_code or "").endswith(
                        (".BadName", ".Failed", ".Rejected")):
                    raise ConnectionError(f"publish refused: {event.name} {event.args}")
                if event.name == name and event.transaction_id >= min_tid:
                    return event

    async def drain(self) -> None:
        """Read (and ignore) what the server sends while we publish: acks, pings."""
        while True:
            try:
                await self.receive()
            except (ConnectionError, trio.BrokenResourceError):
                return  # after deleteStream the server may close first
            while self.conn.next_event() is not NEED_DATA:
                pass


async def publish(host: str, port: int, app: str, key: str, clip: Clip, out: Published) -> None:
    """Handshake, connect, publish `key`, then send the clip on its real-time schedule."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream, trio.open_nursery() as nursery:
        s = _Session(stream)
        await s.send(s.conn.initiate())
        while True:  # S0+S1+S2 in; the client then queues C2
            s.conn.next_event()
            if c2 := s.conn.data_to_send():
                await s.send(c2)
                break
            await s.receive()
        await s.send(s.conn.set_chunk_size(4096))
        await s.send(s.conn.connect(app, f"rtmp://{host}:{port}/{app}"))
        await s.until("_result")
        await s.send(s.conn.release_stream(key) + s.conn.fc_publish(key))
        await s.send(s.conn.create_stream())
        result = await s.until("_result", 4.0)
        stream_id = int(result.args[0]) if result.args and isinstance(result.args[0], float) else 1
        await s.send(s.conn.publish(stream_id, key))
        status = await s.until("onStatus")
        if status.status_code != "NetStream.Publish.Start":
            raise ConnectionError(f"publish not started: {status.status_code}")
        nursery.start_soon(s.drain)
        await s.send(s.conn.metadata(stream_id, {
            "width": float(WIDTH), "height": float(HEIGHT), "framerate": float(FPS),
            "videocodecid": 7.0, "audiocodecid": 10.0}))
        await s.send(s.conn.video(stream_id, 0, avc_sequence_header(clip.avc_record)))
        await s.send(s.conn.audio(stream_id, 0, aac_sequence_header(clip.asc)))
        out.start_s = start = time.monotonic() + 0.05
        for dts_ms, kind, body in clip.packets:
            due = start + dts_ms / 1000
            await trio.sleep(max(0.0, due - time.monotonic()))
            if kind == "video":
                await s.send(s.conn.video(stream_id, dts_ms, body))
                out.sent_s[dts_ms] = due
                out.late_s.append(time.monotonic() - due)
            else:
                await s.send(s.conn.audio(stream_id, dts_ms, body))
        await s.send(s.conn.fc_unpublish(key) + s.conn.delete_stream(stream_id))
        nursery.cancel_scope.cancel()
