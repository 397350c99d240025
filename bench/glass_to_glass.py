"""Benchmark: publish-to-playable latency of streamscale (LL-HLS and classic HLS) and of
nginx with the RTMP module (classic HLS, 1 s fragments), same publisher, same clip.

One publisher sends a pre-encoded 720p30 clip (libx264 zerolatency, 2 s or 1 s
keyframes, AAC) over RTMP in real time and notes each video frame's publish time. Then,
per frame (frames in the warm-up and the last segment-plus-GOP are left out):

- available: when a playlist listing the part (LL-HLS, followed with blocking reloads)
  or segment (classic, polled every 20 ms) that holds the frame reached the client,
  minus the publish time. Frames are found in parts/segments by their decode timestamps
  (fMP4 tfdt+trun, MPEG-TS PES), which both servers keep from the RTMP timestamps.
- player: a model of an LL-HLS player (joins PART-HOLD-BACK behind the end of the
  playlist, then blocking reloads for each next part) and of a classic player (joins
  three target durations back, reloads per RFC 8216bis 6.3.4), several joining at
  staggered times; latency = when a frame is presented (real-time playout from the join,
  stalls included) minus its publish time.

streamscale runs in a child process (bench/_g2g_server.py, with timing taps on ingest,
ladder and packager that split the LL-HLS figure into stages); nginx runs from a temp dir
on 127.0.0.1 (installed with apt-get if missing, root only; else the peer is skipped).
Prints figures and targets; asserts nothing. The machine is shared: load is printed.

    .venv/bin/python bench/glass_to_glass.py [--seconds 30] [--gops 2,1] [--part-s 0.334]
        [--segment-s 2] [--ladder source,720p,480p,360p] [--rung 720p] [--players 4]
        [--systems streamscale,nginx] [--no-install]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "platform"), str(HERE)]

import _g2g_nginx as nginx  # noqa: E402
from _g2g_clients import (  # noqa: E402
    Record,
    classic_player,
    follow_parts,
    follow_segments,
    ll_player,
)
from _g2g_media import frame_latencies, percentile  # noqa: E402
from _g2g_publish import Clip, Published, make_clip, publish, read_clip  # noqa: E402

OUT = HERE / "out"
LL_P50_S, LL_P95_S = 1.5, 2.5


@dataclass
class Row:
    system: str
    gop_s: float
    mode: str
    latencies: list[float]
    target: str = ""
    met: bool | None = None

    @property
    def p50(self) -> float:
        return float(percentile(self.latencies, 50))

    @property
    def p95(self) -> float:
        return float(percentile(self.latencies, 95))


@dataclass
class Run:
    """One system with one keyframe interval: the records of every watcher and player."""

    system: str
    gop_s: float
    published: Published = field(default_factory=Published)
    parts: Record | None = None
    segments: Record = field(default_factory=Record)
    ll_players: list[Record] = field(default_factory=list)
    classic_players: list[Record] = field(default_factory=list)
    target_duration_s: float = 0.0
    part_hold_back_s: float = 0.0
    trace: dict[str, Any] = field(default_factory=dict)


# -- one measured session -------------------------------------------------------------------


async def session(run: Run, args: argparse.Namespace, clip: Clip, *, host: str, port: int,
                  app: str, key: str, ll_url: str | None, classic_url: str) -> None:
    """Watchers and players start, the publisher sends the clip, watchers drain, stop."""
    async with httpx.AsyncClient(timeout=15) as client, trio.open_nursery() as nursery:
        if ll_url is not None:
            run.parts = Record()
            nursery.start_soon(follow_parts, client, ll_url, run.parts)
        nursery.start_soon(follow_segments, client, classic_url, run.segments)
        for i in range(args.players):  # joins 1.37 s apart: off the part/segment grid
            if ll_url is not None:
                rec = Record()
                run.ll_players.append(rec)
                nursery.start_soon(ll_player, client, ll_url, args.warmup_s + i * 1.37, rec)
            rec = Record()
            run.classic_players.append(rec)
            nursery.start_soon(classic_player, client, classic_url, i * 1.37, rec)
        await publish(host, port, app, key, clip, run.published)
        await trio.sleep(args.drain_s)  # the last segments close on unpublish
        nursery.cancel_scope.cancel()
    seen = run.parts.playlist if run.parts is not None else run.segments.playlist
    if seen is not None:
        run.target_duration_s = seen.target_duration_s
        run.part_hold_back_s = seen.part_hold_back_s or 0.0


async def _start_child(cmd: list[str], **kw: Any) -> trio.Process:
    return await trio.lowlevel.open_process(cmd, **kw)


async def _stop(proc: trio.Process, *, close_stdin: bool = False) -> None:
    if close_stdin and proc.stdin is not None:
        await proc.stdin.aclose()
    else:
        proc.terminate()
    with trio.move_on_after(15):
        await proc.wait()
        return
    proc.kill()
    await proc.wait()


async def run_streamscale(run: Run, args: argparse.Namespace, clip: Clip) -> None:
    with tempfile.TemporaryDirectory(prefix="g2g-streamscale-") as tmp:
        spec = {"data_dir": tmp, "trace": f"{tmp}/trace.json", "ladder": args.ladder,
                "segment_s": args.segment_s, "part_s": args.part_s, "rung": args.rung}
        log = (Path(tmp) / "server.log").open("wb")  # shown if the run fails
        proc = await _start_child([sys.executable, str(HERE / "_g2g_server.py"),
                                   json.dumps(spec)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=log)
        failed = True
        try:
            assert proc.stdout is not None
            line = b""
            with trio.fail_after(60):
                while not line.endswith(b"\n"):
                    chunk = await proc.stdout.receive_some(4096)
                    if not chunk:
                        raise RuntimeError("the streamscale child exited before starting")
                    line += chunk
            urls = json.loads(line)
            async with httpx.AsyncClient(base_url=urls["api"].removesuffix("/api"),
                                         timeout=30) as api:
                await api.post("/api/users/register", json={
                    "username": "bench", "email": "b@example.com", "password": "pass word 1"})
                token = (await api.post("/api/users/login", json={
                    "login": "bench", "password": "pass word 1"})).json()["access_token"]
                body = (await api.post("/api/streams/start", json={
                    "title": "g2g", "category": "bench"},
                    headers={"Authorization": f"Bearer {token}"})).json()
            stream_id, key = body["stream"]["id"], body["stream_key"]
            hostport, app = urls["rtmp"].removeprefix("rtmp://").split("/", 1)
            host, port = hostport.rsplit(":", 1)
            base = f"{urls['hls']}/live/{stream_id}/{args.rung}"
            await session(run, args, clip, host=host, port=int(port), app=app, key=key,
                          ll_url=f"{base}/index.m3u8", classic_url=f"{base}/classic.m3u8")
            failed = False
        finally:
            await _stop(proc, close_stdin=True)
            log.close()
            if failed:
                text = await trio.Path(tmp, "server.log").read_text(errors="replace")
                print(f"streamscale server log (tail):\n{text[-3000:]}", file=sys.stderr)
        trace = trio.Path(spec["trace"])
        run.trace = json.loads(await trace.read_text()) if await trace.exists() else {}


async def run_nginx(run: Run, args: argparse.Namespace, clip: Clip, found: tuple[str, str]
                    ) -> None:
    binary, module = found
    with tempfile.TemporaryDirectory(prefix="g2g-nginx-") as tmp_name:
        tmp = Path(tmp_name)
        conf, rtmp_port, http_port = nginx.write_config(tmp, module, fragment_s=1.0)
        log = (tmp / "stderr.log").open("wb")
        proc = await _start_child(nginx.command(binary, tmp, conf), stdout=log, stderr=log)
        try:
            with trio.fail_after(10):
                while True:
                    try:
                        await (await trio.open_tcp_stream("127.0.0.1", rtmp_port)).aclose()
                        break
                    except OSError:
                        await trio.sleep(0.05)
            await session(run, args, clip, host="127.0.0.1", port=rtmp_port, app="live",
                          key="bench", ll_url=None,
                          classic_url=f"http://127.0.0.1:{http_port}/hls/bench.m3u8")
        finally:
            await _stop(proc)
            log.close()


# -- figures --------------------------------------------------------------------------------


def _offset(run: Run) -> int:
    """Server timestamp - publisher timestamp (90 kHz), from the stream's first segment."""
    rec = run.parts if run.parts is not None else run.segments
    first = min((a for a in rec.arrivals if a.dts), key=lambda a: (a.msn, a.index), default=None)
    if first is None or first.msn != 0 or not run.published.sent_s:
        raise RuntimeError(f"{run.system}: never saw the stream's first segment")
    return int(first.dts[0] - 90 * min(run.published.sent_s))


def _window(run: Run, args: argparse.Namespace) -> dict[int, float]:
    """Publish times of the frames measured: past the warm-up, and not in the last
    segment (which closes only when the publisher stops)."""
    sent = run.published.sent_s
    last_ms = max(sent) - 1000 * (args.segment_s + run.gop_s + 0.5)
    return {ms: t for ms, t in sent.items() if args.warmup_s * 1000 <= ms <= last_ms}


def rows_for(run: Run, args: argparse.Namespace) -> list[Row]:
    lat = partial(frame_latencies, sent_s=_window(run, args), offset_90k=_offset(run))

    def players(records: list[Record]) -> list[float]:
        out: list[float] = []
        for r in records:
            if r.playout is not None:
                out += lat([(a.wall_s, a.dts) for a in r.arrivals], playout=r.playout).values()
        return out

    td = run.target_duration_s
    rows = []
    if run.parts is not None:
        ll = lat([(a.wall_s, a.dts) for a in run.parts.arrivals]).values()
        rows.append(Row(run.system, run.gop_s, "LL-HLS part available", list(ll)))
        rows.append(Row(run.system, run.gop_s,
                        f"LL-HLS player (PART-HOLD-BACK {run.part_hold_back_s:g} s)",
                        players(run.ll_players)))
        for row in rows:
            row.target = f"p50<={LL_P50_S:g} p95<={LL_P95_S:g}"
            row.met = row.p50 <= LL_P50_S and row.p95 <= LL_P95_S
    seg = Row(run.system, run.gop_s, "classic segment available",
              list(lat([(a.wall_s, a.dts) for a in run.segments.arrivals]).values()))
    if run.system == "streamscale":
        seg.target, seg.met = f"p95<=3 TD ({3 * td:g} s)", seg.p95 <= 3 * td
    rows.append(seg)
    rows.append(Row(run.system, run.gop_s, f"classic player (HOLD-BACK 3 TD = {3 * td:g} s)",
                    players(run.classic_players)))
    return rows


def breakdown(run: Run, args: argparse.Namespace) -> list[tuple[str, list[float]]]:
    """Where an LL-HLS part's latency goes, per frame, from the server's timing taps."""
    tr, sent = run.trace, _window(run, args)
    if not tr or run.parts is None:
        return []
    pipeline_in = dict(tr["pipeline_in"])
    ladder = {ms: (a, b) for ms, a, b in tr["ladder"]}
    closed: dict[int, float] = {}
    open_frames: list[int] = []
    for dts, wall, parts in tr["part_close"]:
        if parts:
            closed.update((ms, wall) for ms in open_frames)
            open_frames = []
        open_frames.append(round(dts / 90))
    avail = frame_latencies([(a.wall_s, a.dts) for a in run.parts.arrivals], sent)
    stages: dict[str, list[float]] = {k: [] for k in (
        "ingest: publish -> pipeline", "thread hop -> ladder", "ladder (decode+scale+encode)",
        "ladder done -> part closed", "part closed -> client has playlist")}
    names = list(stages)
    for rec in run.ll_players:
        if rec.playout is not None:
            shown = frame_latencies([(a.wall_s, a.dts) for a in rec.arrivals], sent,
                                    playout=rec.playout)
            stages.setdefault("client has part -> player presents it", []).extend(
                shown[ms] - avail[ms] for ms in shown if ms in avail)
    for ms, t_sent in sent.items():
        if ms not in avail or ms not in closed:
            continue
        if ms not in pipeline_in or ms not in ladder:
            continue
        marks = [t_sent, pipeline_in[ms], *ladder[ms], closed[ms], t_sent + avail[ms]]
        for name, a, b in zip(names, marks, marks[1:], strict=False):
            stages[name].append(b - a)
    return list(stages.items())


def _fmt(x: float) -> str:
    return "  -  " if x != x else f"{x:5.2f}"


def print_table(rows: list[Row]) -> None:
    print(f"\n{'system':<12} {'keyframes':>9}  {'mode':<44} {'p50 s':>6} {'p95 s':>6} "
          f"{'n':>6}  {'target':<22} met")
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        print(f"{r.system:<12} {r.gop_s:>8g}s  {r.mode:<44} {_fmt(r.p50):>6} {_fmt(r.p95):>6} "
              f"{len(r.latencies):>6}  {r.target:<22} {met}")


def print_comparison(rows: list[Row]) -> None:
    def find(system: str, gop: float, start: str) -> Row | None:
        return next((r for r in rows if r.system == system and r.gop_s == gop
                     and r.mode.startswith(start)), None)

    print("\nbetter than nginx-rtmp (p50, same keyframe interval):")
    pairs = [("LL-HLS player", "classic player"), ("classic segment", "classic segment"),
             ("classic player", "classic player")]
    for gop in sorted({r.gop_s for r in rows}, reverse=True):
        for ours_mode, peer_mode in pairs:
            ours = find("streamscale", gop, ours_mode)
            peer = find("nginx-rtmp", gop, peer_mode)
            if ours is None or peer is None or not peer.latencies:
                continue
            verdict = "yes" if ours.p50 < peer.p50 else "NO"
            print(f"  {gop:g} s keyframes, our {ours_mode} vs nginx {peer_mode}: "
                  f"{ours.p50:.2f} vs {peer.p50:.2f} s (x{ours.p50 / peer.p50:.2f}) {verdict}")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


async def main(args: argparse.Namespace) -> None:
    systems = args.systems.split(",")
    found: tuple[str, str] | str = "not requested"
    if "nginx" in systems:
        found = nginx.find_nginx(install=not args.no_install)
        if isinstance(found, str):
            print(f"nginx-rtmp peer skipped: {found}")
    rows: list[Row] = []
    for gop_s in [float(g) for g in args.gops.split(",")]:
        clip = read_clip(make_clip(OUT, gop_s=gop_s, seconds=args.seconds))
        for system in systems:
            if system == "nginx" and isinstance(found, str):
                continue
            name = "streamscale" if system == "streamscale" else "nginx-rtmp"
            run = Run(name, gop_s)
            print(f"{name}, {gop_s:g} s keyframes, {args.seconds:g} s clip ... ({load()})",
                  flush=True)
            if system == "streamscale":
                await run_streamscale(run, args, clip)
            else:
                assert not isinstance(found, str)
                await run_nginx(run, args, clip, found)
            late = run.published.late_s
            players = [*run.ll_players, *run.classic_players]
            stalls = sum(r.playout.stalls for r in players if r.playout is not None)
            print(f"  publisher: {len(run.published.sent_s)} video frames, send lag p95 "
                  f"{percentile(late, 95) * 1000:.1f} ms; server timestamp offset "
                  f"{_offset(run)} ticks; TD {run.target_duration_s:g} s; player stalls "
                  f"{stalls}; HTTP retries {sum(r.errors for r in players)}")
            window = _window(run, args)
            for rung, at_s, ladder_load, behind_s in run.trace.get("dropped", []):
                print(f"  OVERLOAD: the ladder dropped rung {rung} "
                      f"{at_s - run.published.start_s:.1f} s into the clip (ladder load "
                      f"{ladder_load:.2f}, {behind_s:.2f} s behind)")
            measured = frame_latencies([(a.wall_s, a.dts) for a in run.segments.arrivals],
                                       window, offset_90k=_offset(run))
            if len(measured) < len(window):
                print(f"  only {len(measured)} of {len(window)} frames reached the "
                      f"{args.rung if system == 'streamscale' else ''} playlist")
            rows += rows_for(run, args)
            for stage, values in breakdown(run, args):
                if values:
                    print(f"    {stage:<38} p50 {statistics.median(values) * 1000:5.0f} ms"
                          f"  p95 {percentile(values, 95) * 1000:5.0f} ms  n {len(values)}")
                else:
                    print(f"    {stage:<38} (no frames traced)")
    print_table(rows)
    print_comparison(rows)
    print(f"\n{load()}; part_s {args.part_s:g}, segment_s {args.segment_s:g}, "
          f"ladder {args.ladder}, measured rung {args.rung}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30, help="clip length per run")
    p.add_argument("--gops", default="2,1", help="keyframe intervals in seconds")
    p.add_argument("--systems", default="streamscale,nginx")
    p.add_argument("--part-s", type=float, default=0.334, help="MediaConfig.part_s")
    p.add_argument("--segment-s", type=float, default=2.0, help="MediaConfig.segment_s")
    p.add_argument("--ladder", default="source,720p,480p,360p", help="MediaConfig.ladder")
    p.add_argument("--rung", default="720p", help="the rendition measured")
    p.add_argument("--players", type=int, default=4, help="player models per kind")
    p.add_argument("--warmup-s", type=float, default=3.0, help="media time left out first")
    p.add_argument("--drain-s", type=float, default=3.0, help="watch on after unpublish")
    p.add_argument("--no-install", action="store_true", help="never apt-get install nginx")
    return p.parse_args()


if __name__ == "__main__":
    trio.run(main, parse_args())
