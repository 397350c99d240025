"""Providers for the transcode side of media server overload (`"module":
"chaos.transcode_actions"`): more 720p30 streams with an encoded ladder than the node
transcodes in real time, and what the platform says about its ladders meanwhile.

The publishers are real ffmpeg processes, but they send a clip encoded once at the start
(`-stream_loop -1 -re -c copy`): each costs the box almost nothing, so the CPU that runs
out is the platform's transcoding, not the drill's own encoders. The ladders' state comes
from the platform's Prometheus `/metrics` on the gateway (`streamscale_transcode_*`,
`streamscale_media_*`), scraped twice a second by a `TranscodeMonitor` from setup to the
end; which pictures a rendition carries comes from the in-process media hub (not
available with `--target`).
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from streamscale.testing.metrics import Scrape, scrape

from . import accounts
from .actions import FFMPEG, publish_answer
from .ctk import provider
from .drill import Drill, current

log = logging.getLogger(__name__)

SCRAPE_EVERY_S = 0.5


@dataclass
class TranscodeMonitor:
    """The media node's transcode gauges over time, per live stream, from `/metrics`."""

    drill: Drill
    samples: list[dict[str, Any]] = field(default_factory=list)  # one per scrape
    failures: int = 0
    last: Scrape | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        started = False
        while True:
            try:
                self.last = await scrape(self.drill.api, "/metrics")
            except httpx.HTTPError:
                self.failures += 1
            else:
                self.samples.append(self._sample(self.last))
            if not started:
                task_status.started()
                started = True
            await trio.sleep(SCRAPE_EVERY_S)  # the scrape interval

    @staticmethod
    def _sample(s: Scrape) -> dict[str, Any]:
        return {"at_s": trio.current_time(),
                "behind_s": s.by("streamscale_transcode_behind_seconds", "stream"),
                "load": s.by("streamscale_transcode_load", "stream"),
                "shed": s.by("streamscale_transcode_shed_rungs", "stream"),
                "dropped_total": s.value("streamscale_media_dropped_rungs_total"),
                "refused_total": s.value("streamscale_media_refused_total"),
                "live": s.value("streamscale_media_live_streams")}

    def since(self, t0: float) -> list[dict[str, Any]]:
        return [x for x in self.samples if x["at_s"] >= t0]


def _monitor() -> TranscodeMonitor:
    monitor = current().state.get("transcode_monitor")
    if not isinstance(monitor, TranscodeMonitor):
        raise RuntimeError("no transcode monitor: watch_transcoding first")
    return monitor


@provider
async def watch_transcoding() -> int:
    """Start scraping the gateway's `/metrics` twice a second; returns the live streams
    the first scrape saw."""
    drill = current()
    monitor = TranscodeMonitor(drill)
    await drill.nursery.start(monitor.run)
    drill.state["transcode_monitor"] = monitor
    return int(monitor.samples[-1]["live"]) if monitor.samples else 0


@provider
async def make_clip(width: int = 1280, height: int = 720, fps: int = 30,
                    seconds: float = 6.0) -> str:
    """Encode the test pattern once (H.264, a keyframe every second) for the publishers to
    loop; returns its size. Video only: AAC passes through the ladder untouched (no
    transcode cost), and a looped clip's audio, a little longer than its video, would
    step back in time at every loop."""
    drill = current()
    folder = Path(tempfile.mkdtemp(prefix="streamscale-chaos-clip-"))
    clip = folder / f"{width}x{height}p{fps}.flv"
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
           "-t", str(float(seconds)), "-c:v", "libx264", "-preset", "veryfast",
           "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0", "-bf", "0",
           "-b:v", "2500k", "-pix_fmt", "yuv420p", "-an", "-f", "flv", str(clip)]
    await trio.run_process(cmd, stdin=subprocess.DEVNULL, capture_stderr=True)
    drill.state["clip"] = clip
    return f"{width}x{height} {fps} fps, {clip.stat().st_size} bytes"


async def _publish_clip(drill: Drill, name: str, key: str, seconds: float) -> trio.Process:
    clip = drill.state.get("clip")
    if not isinstance(clip, Path):
        raise RuntimeError("no clip: make_clip first")
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
           "-stream_loop", "-1", "-i", str(clip), "-t", str(float(seconds)), "-c", "copy",
           "-f", "flv", f"{drill.target.rtmp}/{key}"]
    process: trio.Process = await drill.nursery.start(partial(
        trio.run_process, cmd, check=False, stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL))
    drill.publishers[name] = process
    return process


async def _wait_live(drill: Drill, stream_id: str, process: trio.Process, name: str,
                     within_s: float) -> None:
    with trio.move_on_after(within_s):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"ffmpeg ({name}) exited with {process.returncode} before "
                                   "its stream was live")
            r = await drill.api.get(f"/api/streams/{stream_id}")
            if r.status_code == 200 and r.json()["status"] == "live":
                return
            await trio.sleep(0.1)  # polls the platform's own state over HTTP
    raise RuntimeError(f"stream of {name} not live {within_s} s after ffmpeg started")


@provider
async def publish_clip(name: str = "watched", seconds: float = 120.0,
                       wait_live_s: float = 30.0) -> str:
    """ffmpeg loops the clip into the drill's stream (actions.start_stream) for `seconds`;
    returns once the stream is live."""
    drill = current()
    process = await _publish_clip(drill, name, drill.state["key"], seconds)
    await _wait_live(drill, drill.state["stream_id"], process, name, wait_live_s)
    return "live"


@provider
async def overload_publishers(count: int = 3, seconds: float = 120.0,
                              wait_live_s: float = 30.0) -> int:
    """`count` more casters start streams and loop the clip into them at once (their
    ladders on top of the watched stream's); returns how many of them went live. One more
    caster's stream is made ready too, for `publish_beyond_capacity` to try right after
    (before sheds give capacity back)."""
    drill = current()
    streams: list[tuple[str, str]] = []
    for i in range(int(count)):
        auth = await accounts.sign_in(drill.api, f"busy{i}")
        streams.append(await accounts.start_stream(drill.api, auth, f"busy caster {i}"))
    auth = await accounts.sign_in(drill.api, "toomany")
    _, drill.state["beyond_capacity_key"] = await accounts.start_stream(
        drill.api, auth, "one caster too many")
    live = 0

    async def one(i: int, stream_id: str, key: str) -> None:
        nonlocal live
        process = await _publish_clip(drill, f"busy{i}", key, seconds)
        await _wait_live(drill, stream_id, process, f"busy{i}", wait_live_s)
        live += 1

    async with trio.open_nursery() as nursery:
        for i, (stream_id, key) in enumerate(streams):
            nursery.start_soon(one, i, stream_id, key)
    drill.state["overload_streams"] = [s for s, _ in streams]
    return live


@provider
async def publish_beyond_capacity(timeout_s: float = 10.0, fresh: bool = False) -> str:
    """One more caster publishes (scripted RTMP, no media) into the stream
    `overload_publishers` made ready, or (`fresh`) a stream started now: the RTMP answer,
    "accepted" or "refused: <the server's reason>". An accepted session is closed at once
    (its admission is released after the reconnect grace)."""
    drill = current()
    key = drill.state["beyond_capacity_key"]
    if fresh:
        n = drill.state["fresh_casters"] = drill.state.get("fresh_casters", 0) + 1
        auth = await accounts.sign_in(drill.api, f"late{n}")
        _, key = await accounts.start_stream(drill.api, auth, f"late caster {n}")
    return await publish_answer(drill.target.rtmp, key, timeout_s)


@provider
async def wait_rungs_shed(at_least: int = 1, within_s: float = 30.0) -> int:
    """Wait until the live ladders have shed `at_least` rungs between them (the gauge
    `streamscale_transcode_shed_rungs` summed over streams); returns the sum then (or at
    the deadline)."""
    monitor = _monitor()
    with trio.move_on_after(within_s):
        while _shed_now(monitor) < at_least:  # noqa: ASYNC110 - the monitor's scrapes
            await trio.sleep(SCRAPE_EVERY_S)
    return _shed_now(monitor)


def _shed_now(monitor: TranscodeMonitor) -> int:
    return int(sum(monitor.samples[-1]["shed"].values())) if monitor.samples else 0


@provider
async def transcode_status() -> dict[str, Any]:
    """The ladders now, from `/metrics`: per stream behind_s, load and shed rungs; the
    node's shed and refused totals; and the worst backlog any stream had so far."""
    monitor = _monitor()
    if not monitor.samples:
        return {}
    last = monitor.samples[-1]
    watched = current().state.get("stream_id")
    return {"streams": {sid: {"behind_s": round(last["behind_s"].get(sid, 0.0), 2),
                              "load": round(last["load"].get(sid, 0.0), 2),
                              "shed": int(last["shed"].get(sid, 0)),
                              "watched": sid == watched}
                        for sid in sorted(last["load"])},
            "dropped_rungs_total": int(last["dropped_total"]),
            "refused_total": int(last["refused_total"]),
            "behind_max_s": _behind_max(monitor.samples)}


def _behind_max(samples: list[dict[str, Any]]) -> float:
    return round(max((b for x in samples for b in x["behind_s"].values()), default=0.0), 2)


@provider
async def transcode_behind_max_s() -> float:
    """The worst transcode backlog (behind_s) any live stream had since the monitor
    started, in seconds."""
    return _behind_max(_monitor().samples)


@provider
async def rendition_carries(rendition: str = "720p") -> str:
    """Whose pictures the watched stream's `rendition` carries now: its own name, or the
    next rung's once it was shed (the in-process media hub's ladder)."""
    drill = current()
    if drill.platform is None:
        raise RuntimeError("needs the in-process platform (not --target)")
    pipeline = drill.platform.handle("media", "hub").pipeline(drill.state["stream_id"])
    if pipeline is None or pipeline.ladder is None:
        raise RuntimeError("the watched stream has no ladder")
    return str(pipeline.ladder.track_of(rendition))


def transcode_timeline(monitor: TranscodeMonitor, journal: dict[str, Any]) -> dict[str, Any]:
    """Behind_s and shed rungs per stream over the drill (seconds since the journal's
    start), for the journal and the plot."""
    start = datetime.fromisoformat(journal["start"]).timestamp()
    offset_s = time.time() - trio.current_time() - start  # trio's clock -> the journal's
    streams = sorted({sid for x in monitor.samples for sid in x["load"]})
    watched = monitor.drill.state.get("stream_id")
    run = [r for r in journal["run"] if r.get("start") and r.get("end")]
    method_s = [round(datetime.fromisoformat(run[0]["start"]).timestamp() - start, 1),
                round(datetime.fromisoformat(run[-1]["end"]).timestamp() - start, 1)
                ] if run else None
    return {"unit": "seconds since the drill started", "watched": watched,
            "method_s": method_s,
            "behind_limit_s": _behind_limit_s(journal["experiment"]),
            "streams": {sid: {
                "behind_s": [[round(x["at_s"] + offset_s, 1), round(x["behind_s"][sid], 2)]
                             for x in monitor.samples if sid in x["behind_s"]],
                "shed": [[round(x["at_s"] + offset_s, 1), int(x["shed"][sid])]
                         for x in monitor.samples if sid in x["shed"]]}
                for sid in streams}}


def _behind_limit_s(experiment: dict[str, Any]) -> float | None:
    """The upper end of the hypothesis' backlog tolerance (a probe of
    `transcode_behind_max_s`), if there is one."""
    for probe in experiment.get("steady-state-hypothesis", {}).get("probes", []):
        tolerance = probe.get("tolerance")
        if probe["provider"].get("func") == "transcode_behind_max_s" and isinstance(
                tolerance, dict) and tolerance.get("type") == "range":
            return float(tolerance["range"][1])
    return None


def plot_transcode(timeline: dict[str, Any], title: str, path: Path) -> Path:
    """Each stream's transcode backlog (behind_s) and shed rungs over the drill, the
    method's span shaded: transcode.png beside the journal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for n, (sid, series) in enumerate(sorted(timeline["streams"].items())):
        label = "watched" if sid == timeline.get("watched") else f"stream {n}"
        for ax, key in ((top, "behind_s"), (bottom, "shed")):
            points = series[key]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label,
                    drawstyle="steps-post" if key == "shed" else "default",
                    linewidth=2.5 if label == "watched" else 1.2)
    for ax in (top, bottom):
        if timeline.get("method_s"):
            ax.axvspan(*timeline["method_s"], color="orange", alpha=0.15)
        ax.legend(fontsize=7, ncol=3)
    if timeline.get("behind_limit_s"):
        top.axhline(timeline["behind_limit_s"], color="red", linestyle="--", linewidth=1)
    top.set_ylabel("transcode behind (s)")
    bottom.set_ylabel("rungs shed")
    bottom.set_xlabel("seconds since the drill started")
    top.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
