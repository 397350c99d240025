"""Child process of bench/glass_to_glass.py: the platform (gateway, media, origin) on free
127.0.0.1 ports, as `streamscale up` runs it, plus timing taps on the media path.

The taps wrap platform calls from outside (no platform code changes) and record
`time.monotonic()` (one clock for every process on Linux), so the bench can split the
latency per frame into ingest, ladder and part closing:

- `StreamPipeline._video` entry: the tag has crossed the socket, RTMP parser and channel
  (keyed by the RTMP timestamp, the frame's dts in ms);
- `Ladder.push` end: each frame the ladder output, per rung (keyed by pts ms);
- `Rendition.push_video`, every rung: the sample and whether it closed a part (the part's
  frames are then in the playlist; the registry wakes blocked requests right after);
- `Ladder.shed` / `Ladder.restore`: a rung shed under overload, or restored.

Usage (by the bench): python bench/_g2g_server.py '<json args>'; prints one JSON line
with the URLs, runs until stdin closes, then writes the trace to args["trace"].
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from streamscale.config import MediaConfig
from streamscale.protocols.hls import Part, Rendition
from streamscale.services.media.pipeline import StreamPipeline
from streamscale.services.media.transcode import Ladder
from streamscale.testing import make_config, running_platform

TRACE: dict[str, list[Any]] = {"pipeline_in": [], "ladder_out": [], "part_close": [],
                                "dropped": []}


def install_taps() -> None:
    video, push, push_video = StreamPipeline._video, Ladder.push, Rendition.push_video
    shed, restore = getattr(Ladder, "shed", None), getattr(Ladder, "restore", None)

    async def tapped_video(self: StreamPipeline, payload: bytes, ts_ms: int) -> None:
        if payload[1:2] == b"\x01":  # an AVC NALU tag, not the sequence header
            TRACE["pipeline_in"].append((ts_ms, time.monotonic()))
        await video(self, payload, ts_ms)

    def tapped_push(self: Ladder, data: bytes, **kw: Any) -> Any:
        out = push(self, data, **kw)
        done = time.monotonic()
        TRACE["ladder_out"].extend((f.rung, round(f.pts_90k / 90), done) for f in out)
        return out

    def tapped_push_video(self: Rendition, sample: Any) -> Any:
        events = push_video(self, sample)
        parts = sum(isinstance(e, Part) for e in events)
        pts = sample.pts if sample.pts is not None else sample.dts
        TRACE["part_close"].append((self.name, round(pts / 90), time.monotonic(), parts))
        return events

    StreamPipeline._video = tapped_video  # type: ignore[method-assign]
    Ladder.push = tapped_push  # type: ignore[method-assign,assignment]
    Rendition.push_video = tapped_push_video  # type: ignore[method-assign]
    for action, method in (("shed", shed), ("restore", restore)):
        if method is not None:
            setattr(Ladder, action, _noting(action, method))


def _noting(action: str, method: Any) -> Any:
    def tapped(self: Ladder) -> str | None:
        name: str | None = method(self)
        if name is not None:  # overload (or a forced change): a rung shed or restored
            TRACE["dropped"].append((f"{action} {name}", time.monotonic(),
                                     getattr(self, "load", 0.0), getattr(self, "behind_s", 0.0)))
        return name

    return tapped


async def main(args: dict[str, Any]) -> None:
    data_dir = Path(args["data_dir"])
    config = make_config(data_dir)
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=1.0, ladder=args["ladder"],
        segment_s=args["segment_s"], part_s=args["part_s"]))
    install_taps()
    async with running_platform(config, ("gateway", "media", "origin")) as platform:
        print(json.dumps({"api": platform.api_url, "rtmp": platform.url("media", "rtmp"),
                          "hls": platform.url("origin", "hls")}), flush=True)
        stdin = trio.lowlevel.FdStream(0)
        while await stdin.receive_some(1024):
            pass
    await trio.Path(args["trace"]).write_text(json.dumps(TRACE))


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("G2G_SERVER_LOG", "WARNING"),
                        format="server %(levelname)s %(name)s: %(message)s")
    trio.run(main, json.loads(sys.argv[1]))
