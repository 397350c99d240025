"""Integration: the real ffmpeg CLI publishes to a tiny trio server driving ServerConnection."""

from __future__ import annotations

import shutil

import pytest
import trio

from streamscale.protocols.flv import (
    AACSequenceHeader,
    AVCFrame,
    AVCSequenceHeader,
    parse_audio,
    parse_script,
    parse_video,
)
from streamscale.protocols.rtmp import (
    NEED_DATA,
    AudioData,
    Connect,
    ConnectionClosed,
    Event,
    Publish,
    ScriptData,
    ServerConnection,
    VideoData,
)


def ffmpeg_exe() -> str | None:
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    exe: str = imageio_ffmpeg.get_ffmpeg_exe()
    return exe


async def serve_one(listener: trio.SocketListener, events: list[Event]) -> None:
    """What the ingest will do, minus the streams service: accept every key."""
    stream = await listener.accept()
    conn = ServerConnection()
    async with stream:
        while True:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            out = b""
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(event)
                if isinstance(event, ConnectionClosed):
                    return
                if isinstance(event, Publish):
                    out += conn.accept_publish()
            out += conn.data_to_send()
            if out:
                try:
                    await stream.send_all(out)
                except trio.BrokenResourceError:
                    return  # ffmpeg hung up right after deleteStream


@pytest.mark.slow
async def test_ffmpeg_publish() -> None:
    exe = ffmpeg_exe()
    if exe is None:
        pytest.skip("no ffmpeg (install ffmpeg or imageio-ffmpeg)")
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    events: list[Event] = []
    command = [
        exe, "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
        "-f", "lavfi", "-i", "sine",
        "-t", "2", "-c:v", "libx264", "-g", "30", "-c:a", "aac",
        "-f", "flv", f"rtmp://127.0.0.1:{port}/live/testkey",
    ]  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_one, listener, events)
            result = await trio.run_process(command, capture_stderr=True, check=False)
    await listener.aclose()
    assert result.returncode == 0, result.stderr.decode(errors="replace")

    connect = next(e for e in events if isinstance(e, Connect))
    assert connect.app == "live"
    assert connect.tc_url == f"rtmp://127.0.0.1:{port}/live"
    publish = next(e for e in events if isinstance(e, Publish))
    assert (publish.stream_key, publish.publish_type) == ("testkey", "live")

    metadata = parse_script(next(e for e in events if isinstance(e, ScriptData)).payload)
    assert (metadata.name, metadata.set_data_frame) == ("onMetaData", True)
    assert (metadata.number("width"), metadata.number("height")) == (320.0, 240.0)

    video = [parse_video(e.payload) for e in events if isinstance(e, VideoData)]
    (header,) = [v for v in video if isinstance(v, AVCSequenceHeader)]
    assert (header.config.width, header.config.height) == (320, 240)
    frames = [v for v in video if isinstance(v, AVCFrame)]
    assert 55 <= len(frames) <= 62
    assert frames[0].keyframe
    assert sum(f.keyframe for f in frames) >= 2  # -g 30 over 2 s
    assert all(f.nal_units for f in frames)

    audio = [parse_audio(e.payload) for e in events if isinstance(e, AudioData)]
    (aac,) = [a for a in audio if isinstance(a, AACSequenceHeader)]
    assert aac.config.object_type == 2
    assert aac.config.sample_rate == 44100
    assert len(audio) > 50
