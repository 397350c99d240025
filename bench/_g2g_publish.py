"""The bench's publisher, as an OBS user's: frames captured in real time, encoded by x264
(veryfast, default tune, a keyframe every 2 s) with AAC audio, sent over RTMP.

- Capture: a 720p30 testsrc2 loop (rendered once by ffmpeg), each frame stamped with
  its capture wall-clock time as a barcode (`_g2g_media.paint_barcode`) right when it is
  due, then written to the encoder's stdin.
- Encode: the ffmpeg CLI, rawvideo in, FLV out on stdout (flushed per packet).
- Publish: the sans-I/O RTMP client in streamscale.testing.rtmp_client relays each FLV tag
  the moment ffmpeg writes it, and notes when each video frame went out; so the encoder's
  delay (capture -> publish) is measured, not assumed.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trio
from _g2g_media import FPS, HEIGHT, WIDTH, FlvReader, FlvTag, Frame, paint_barcode

from streamscale.protocols.rtmp import NEED_DATA
from streamscale.testing.rtmp_client import ClientConnection, ServerCommand

FFMPEG = "/usr/bin/ffmpeg"
FRAME_BYTES = WIDTH * HEIGHT * 3 // 2
LOOP_FRAMES = 60


def background(out_dir: Path) -> np.ndarray:
    """LOOP_FRAMES of testsrc2 at 720p, yuv420p, rendered once into out_dir."""
    path = out_dir / f"g2g_testsrc2_{WIDTH}x{HEIGHT}_{LOOP_FRAMES}.yuv"
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}", "-frames:v",
                        str(LOOP_FRAMES), "-pix_fmt", "yuv420p", "-f", "rawvideo", str(path)],
                       check=True)
    frames = np.fromfile(path, dtype=np.uint8)
    return frames.reshape(LOOP_FRAMES, FRAME_BYTES)


def encoder_cmd(gop_s: float) -> list[str]:
    """x264 veryfast with the default tune (B-frames, lookahead, frame threads), as OBS
    sends by default, a keyframe every gop_s exactly; AAC from a real-time sine."""
    gop = round(gop_s * FPS)
    return [FFMPEG, "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}",
            "-r", str(FPS), "-i", "pipe:0",
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-map", "0:v", "-map", "1:a", "-shortest",
            "-c:v", "libx264", "-preset", "veryfast", "-g", str(gop), "-keyint_min", str(gop),
            "-sc_threshold", "0", "-b:v", "3500k", "-maxrate", "3500k", "-bufsize", "7000k",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
            "-flush_packets", "1", "-f", "flv", "pipe:1"]  # fmt: skip


@dataclass
class Published:
    frames: dict[int, Frame] = field(default_factory=dict)  # by frame index
    by_epoch_ms: dict[int, int] = field(default_factory=dict)  # barcode value -> index
    video_tags: int = 0
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
                return
            while self.conn.next_event() is not NEED_DATA:
                pass


async def _open_publish(host: str, port: int, app: str, key: str) -> tuple[_Session, int]:
    s = _Session(await trio.open_tcp_stream(host, port))
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
    return s, stream_id


async def _capture(stdin: trio.abc.SendStream, loop: np.ndarray, seconds: float,
                   out: Published) -> None:
    """Paint and hand over one frame every 1/FPS s on a fixed schedule."""
    frame = np.empty(FRAME_BYTES, dtype=np.uint8)
    out.start_s = start = time.monotonic() + 0.1
    for i in range(round(seconds * FPS)):
        due = start + i / FPS
        await trio.sleep(max(0.0, due - time.monotonic()))
        epoch_ms = int(time.time() * 1000)
        captured = time.monotonic()
        frame[:] = loop[i % len(loop)]
        paint_barcode(frame, epoch_ms)
        out.frames[i] = Frame(i, captured)
        out.by_epoch_ms[epoch_ms] = i
        await stdin.send_all(frame.tobytes())
    await stdin.aclose()


async def _relay(stdout: trio.abc.ReceiveStream, session: _Session, stream_id: int,
                 out: Published) -> None:
    """Every FLV tag ffmpeg writes goes out over RTMP at once; video frames are matched
    to capture indices by presentation time (the first frame out is an IDR, index 0)."""
    reader, first_pts = FlvReader(), None
    conn = session.conn
    while chunk := await stdout.receive_some(1 << 16):
        for tag in reader.feed(chunk):
            await session.send(_message(conn, stream_id, tag))
            if tag.is_video_frame:
                sent = time.monotonic()
                out.video_tags += 1
                first_pts = tag.pts_ms if first_pts is None else first_pts
                index = round((tag.pts_ms - first_pts) * FPS / 1000)
                known = out.frames.get(index)
                if known is not None:
                    out.frames[index] = Frame(index, known.captured_s, sent, tag.timestamp_ms,
                                              tag.pts_ms)


def _message(conn: ClientConnection, stream_id: int, tag: FlvTag) -> bytes:
    if tag.kind == 9:
        return conn.video(stream_id, tag.timestamp_ms, tag.body)
    if tag.kind == 8:
        return conn.audio(stream_id, tag.timestamp_ms, tag.body)
    return b""  # ffmpeg's onMetaData: publish() sends its own, as OBS does


async def publish(host: str, port: int, app: str, key: str, *, seconds: float, gop_s: float,
                  loop: np.ndarray, out: Published) -> None:
    """Capture, encode and publish for `seconds`, then unpublish."""
    session, stream_id = await _open_publish(host, port, app, key)
    encoder = await trio.lowlevel.open_process(encoder_cmd(gop_s), stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE)
    assert encoder.stdin is not None
    assert encoder.stdout is not None
    try:
        async with session.stream, trio.open_nursery() as nursery:
            nursery.start_soon(session.drain)
            await session.send(session.conn.metadata(stream_id, {
                "width": float(WIDTH), "height": float(HEIGHT), "framerate": float(FPS),
                "videocodecid": 7.0, "audiocodecid": 10.0}))
            nursery.start_soon(_capture, encoder.stdin, loop, seconds, out)
            await _relay(encoder.stdout, session, stream_id, out)
            await session.send(session.conn.fc_unpublish(key)
                               + session.conn.delete_stream(stream_id))
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if encoder.returncode is None:
                encoder.kill()
            await encoder.wait()
