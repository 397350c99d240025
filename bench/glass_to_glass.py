"""Benchmark: glass-to-glass latency with a real player, streamscale (LL-HLS, master
playlist, ABR on) against nginx with the RTMP module (classic HLS) in the same run.

Capture to display, measured in the picture: the publisher paints each frame's capture
wall-clock time into it as a barcode (bench/_g2g_media.py), encodes with x264 veryfast in
its default tune with a keyframe every 2 s (what OBS users send) and publishes over RTMP
(bench/_g2g_publish.py). hls.js in its default configuration plays the stream in
Debian's headless Chromium (streamscale.testing.browser, web/player_probe.html); on every
displayed frame (requestVideoFrameCallback) the page reads the barcode back and notes the
frame's expected display time. Latency = display time - capture time, per frame.

streamscale runs in a child process with timing taps (bench/_g2g_server.py), so each
displayed frame's time splits into: capture -> publish (the publisher's encoder),
publish -> ingest, ingest -> ladder output (decode, scale, encode), ladder output -> part
closed (the part filling up), part available -> displayed (the player: fetch, buffer,
where hls.js plays behind the live edge, decode, display). nginx runs from a temp dir on
127.0.0.1 (installed with apt-get if missing, root only; else the peer is skipped).

The player joins --join-after-s into the publish (a viewer arriving at a stream that is
live, not at its start-up); frames shown during the first --warmup-s after it starts are
left out (join and ABR settling). The ratio is printed only when both players decoded frames. Prints
figures; asserts nothing. The machine is shared: load is printed.

    .venv/bin/python bench/glass_to_glass.py [--seconds 50] [--gop-s 2] [--part-s 0.334]
        [--segment-s 2] [--ladder source,720p,480p,360p] [--systems streamscale,nginx]
        [--join-after-s 10] [--warmup-s 8]
        [--no-install] [--dump samples.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "platform"), str(HERE)]

import _g2g_nginx as nginx  # noqa: E402
from _g2g_media import Frame, parts_closed, percentile, stages  # noqa: E402
from _g2g_publish import Published, background, publish  # noqa: E402

from streamscale.testing.browser import Browser, Player, PlayerState, open_browser  # noqa: E402

OUT = HERE / "out"
P50_TARGET_S, P95_TARGET_S = 1.5, 2.0
MIN_FRAMES = 100  # fewer decoded frames than this: the system did not play


@dataclass
class Run:
    system: str
    published: Published = field(default_factory=Published)
    samples: list[list[float]] = field(default_factory=list)  # from the page
    player_started_s: float = 0.0  # monotonic
    first: PlayerState | None = None  # the first reading once playing
    last: PlayerState | None = None
    playlist: dict[str, float] = field(default_factory=dict)  # PART-HOLD-BACK etc.
    trace: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""


def epoch_offset_s() -> float:
    """time.time() - time.monotonic(): turns the page's epoch ms into monotonic seconds."""
    return time.time() - time.monotonic()


def rung_of(state: PlayerState, level: int) -> str:
    if 0 <= level < len(state.levels):
        return str(state.levels[level]["url"]).rsplit("/", 2)[-2]
    return "?"


_ATTR = re.compile(r"([A-Z-]+)=([0-9.]+)")


def playlist_facts(text: str) -> dict[str, float]:
    """TARGETDURATION, PART-TARGET, PART-HOLD-BACK, HOLD-BACK of a media playlist."""
    facts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            facts["TARGETDURATION"] = float(line.partition(":")[2])
        elif line.startswith(("#EXT-X-PART-INF:", "#EXT-X-SERVER-CONTROL:")):
            facts.update((k, float(v)) for k, v in _ATTR.findall(line.partition(":")[2]))
    return facts


# -- one measured session -------------------------------------------------------------------


async def _wait_playable(client: httpx.AsyncClient, url: str, *, timeout_s: float = 60) -> str:
    """The playlist at `url` once it answers 200 and (a master's first variant, or it
    itself) lists two segments: a viewer joining a stream that is live."""
    with trio.fail_after(timeout_s):
        while True:
            r = await client.get(url)
            if r.status_code == 200:
                media = r.text
                uris = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
                if "#EXT-X-STREAM-INF" in r.text and uris:
                    m = await client.get(httpx.URL(url).join(uris[0]))
                    media = m.text if m.status_code == 200 else ""
                if media.count("#EXTINF") >= 2:
                    return r.text
            await trio.sleep(0.1)


async def _watch(player: Player, run: Run, done: trio.Event) -> None:
    """Collect the page's samples once a second until the publisher is done."""
    with trio.fail_after(60):
        while True:
            state = await player.state()
            if state.fatal:
                raise RuntimeError(f"{run.system}: player failed: {state.fatal}")
            if state.presented > 0:
                run.first = state
                break
            await trio.sleep(0.1)
    while not done.is_set():
        with trio.move_on_after(1.0):
            await done.wait()
        run.samples += await player.take_samples()
        run.last = await player.state()


async def session(run: Run, args: argparse.Namespace, browser: Browser, loop: Any, *,
                  host: str, port: int, app: str, key: str, play_url: str,
                  media_url: str) -> None:
    done = trio.Event()

    async def publisher() -> None:
        try:
            await publish(host, port, app, key, seconds=args.seconds, gop_s=args.gop_s,
                          loop=loop, out=run.published)
        finally:
            done.set()

    async with httpx.AsyncClient(timeout=15) as client, trio.open_nursery() as nursery:
        nursery.start_soon(publisher)
        await _wait_playable(client, play_url)
        await trio.sleep(max(0.0, run.published.start_s + args.join_after_s - time.monotonic()))
        player = await browser.open_player(play_url, barcode=True,
                                           config=json.loads(args.hls_config) or None)
        run.player_started_s = time.monotonic()
        try:
            await _watch(player, run, done)
        finally:
            await player.close()
        if run.last is not None and run.last.levels:
            counts = Counter(int(s[2]) for s in run.samples)
            level = counts.most_common(1)[0][0] if counts else 0
            media_url = str(run.last.levels[level]["url"]) if play_url != media_url else media_url
        r = await client.get(media_url)
        run.playlist = playlist_facts(r.text) if r.status_code == 200 else {}


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


async def run_streamscale(run: Run, args: argparse.Namespace, browser: Browser,
                          loop: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="g2g-streamscale-") as tmp:
        spec = {"data_dir": tmp, "trace": f"{tmp}/trace.json", "ladder": args.ladder,
                "segment_s": args.segment_s, "part_s": args.part_s}
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
            master = f"{urls['hls']}/live/{stream_id}/master.m3u8"
            await session(run, args, browser, loop, host=host, port=int(port), app=app,
                          key=key, play_url=master, media_url="")
            failed = False
        finally:
            await _stop(proc, close_stdin=True)
            log.close()
            if failed:
                text = await trio.Path(tmp, "server.log").read_text(errors="replace")
                print(f"streamscale server log (tail):\n{text[-3000:]}", file=sys.stderr)
        trace = trio.Path(spec["trace"])
        run.trace = json.loads(await trace.read_text()) if await trace.exists() else {}


async def run_nginx(run: Run, args: argparse.Namespace, browser: Browser, loop: Any,
                    found: tuple[str, str]) -> None:
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
            url = f"http://127.0.0.1:{http_port}/hls/bench.m3u8"
            await session(run, args, browser, loop, host="127.0.0.1", port=rtmp_port,
                          app="live", key="bench", play_url=url, media_url=url)
        finally:
            await _stop(proc)
            log.close()


# -- figures --------------------------------------------------------------------------------


def measured(run: Run, args: argparse.Namespace) -> list[tuple[Frame | None, int, float, float]]:
    """(publisher's frame, level, captured, displayed) for the frames displayed after the
    warm-up; times in monotonic seconds."""
    offset = epoch_offset_s()
    from_s = run.player_started_s + args.warmup_s
    out = []
    for captured_ms, shown_ms, level, _latency, _media in run.samples:
        shown = shown_ms / 1000 - offset
        if shown < from_s:
            continue
        index = run.published.by_epoch_ms.get(round(captured_ms))
        frame = run.published.frames.get(index) if index is not None else None
        captured = frame.captured_s if frame is not None else captured_ms / 1000 - offset
        out.append((frame, int(level), captured, shown))
    return out


def _ms(x: float) -> str:
    return "    -" if x != x else f"{x * 1000:5.0f}"


def report(run: Run, args: argparse.Namespace) -> list[float]:
    """Prints the run's figures; returns its glass-to-glass latencies (s)."""
    print(f"\n== {run.system}")
    if run.skipped:
        print(f"  skipped: {run.skipped}")
        return []
    rows = measured(run, args)
    g2g = [shown - captured for _f, _l, captured, shown in rows]
    last = run.last
    levels = Counter(rung_of(last, lvl) if last else str(lvl) for _f, lvl, _c, _s in rows)
    print(f"  frames: {len(run.published.frames)} captured, {run.published.video_tags} "
          f"published, {len(run.samples)} displayed with a readable barcode "
          f"({len(rows)} after the {args.warmup_s:g} s warm-up)")
    if last is not None:
        print(f"  player: decoded {last.decoded_frames}, dropped {last.dropped_frames}, "
              f"unreadable barcodes {last.decode_failures}"
              f", waiting events {last.waiting}, stall errors {last.buffer_stalls}, "
              f"errors {len(last.errors)}; levels shown "
              + ", ".join(f"{k} {v * 100 / max(1, len(rows)):.0f}%" for k, v in
                          levels.most_common()))
        if last.errors:
            print("  player errors: " + "; ".join(
                f"{e['details']}{' (fatal)' if e['fatal'] else ''} at "
                f"{(e['at'] - last.marks.get('page', [e['at']])[0]) / 1000:.1f} s"
                for e in last.errors[:6]))
    if not g2g:
        return g2g
    print(f"  glass to glass: p50 {percentile(g2g, 50):.3f} s, p95 "
          f"{percentile(g2g, 95):.3f} s, mean {statistics.fmean(g2g):.3f} s, n {len(g2g)}")
    latencies = [s[3] for s in run.samples if s[3] is not None]
    first = run.first.latency_s if run.first is not None else None
    facts = " ".join(f"{k} {v:g}" for k, v in run.playlist.items())
    print(f"  playlist: {facts}; hls.js behind the live edge (hls.latency): at join "
          f"{first if first is None else round(first, 3)} s, p50 "
          f"{percentile(latencies, 50):.3f} s; hls.targetLatency "
          f"{last.target_latency_s if last else None}")
    if last is not None and last.marks:
        page_ms = last.marks["page"][0]
        steps = sorted(last.marks.items(), key=lambda kv: kv[1][0])
        print("  join (ms after the page opened, hls.latency then): " + ", ".join(
            f"{name} {at - page_ms:.0f}" + ("" if lat is None else f" ({lat:.2f} s)")
            for name, (at, lat, _pos) in steps if name != "page"))
    frames = {f.index: f for f, *_ in rows if f is not None}
    encoder = [f.published_s - f.captured_s for f in frames.values()
               if f.published_s is not None]
    print(f"  capture -> publish (encoder): p50 {_ms(percentile(encoder, 50))} ms, p95 "
          f"{_ms(percentile(encoder, 95))} ms")
    if run.trace and last is not None:
        tr = run.trace
        split = stages(
            ((f, rung_of(last, lvl), shown) for f, lvl, _c, shown in rows if f is not None),
            pipeline_in={ms: t for ms, t in tr["pipeline_in"]},
            ladder_out={(r, ms): t for r, ms, t in tr["ladder_out"]},
            part_closed=parts_closed(tr["part_close"]),
        )
        total = split.pop("glass to glass")
        if total:
            mean_total = statistics.fmean(total)
            print(f"  where the time goes ({len(total)} frames traced end to end; "
                  f"share of the mean {mean_total * 1000:.0f} ms):")
            print(f"    {'stage':<34} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>8} {'share':>6}")
            for name, values in split.items():
                mean = statistics.fmean(values)
                print(f"    {name:<34} {_ms(percentile(values, 50)):>7} "
                      f"{_ms(percentile(values, 95)):>7} {mean * 1000:8.0f} "
                      f"{mean / mean_total * 100:5.0f}%")
            player = split["part available -> displayed"]
            hold = run.playlist.get("PART-HOLD-BACK")
            joined = run.first.latency_s if run.first is not None else None
            if player and hold is not None and joined is not None and latencies:
                behind = percentile(latencies, 50)
                print(f"    the player's {statistics.median(player) * 1000:.0f} ms by hls.js's "
                      f"own reading: PART-HOLD-BACK {hold * 1000:.0f} ms + join debt (behind "
                      f"the edge at the first frame beyond it) {(joined - hold) * 1000:.0f} ms "
                      f"+ drift since {(behind - joined) * 1000:.0f} ms = behind the edge "
                      f"{behind * 1000:.0f} ms; the rest (fetch, append, decode, display, "
                      f"less the part's own fill) "
                      f"{(statistics.median(player) - behind) * 1000:.0f} ms")
        for change, at_s, load, behind in tr.get("dropped", []):
            print(f"  OVERLOAD: {change} "
                  f"{at_s - run.published.start_s:.1f} s into the publish (load {load:.2f}, "
                  f"{behind:.2f} s behind)")
    return g2g


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


async def main(args: argparse.Namespace) -> None:
    systems = args.systems.split(",")
    found: tuple[str, str] | str = "not requested"
    if "nginx" in systems:
        found = nginx.find_nginx(install=not args.no_install)
    loop = background(OUT)
    runs: list[Run] = []
    async with open_browser() as browser:
        for system in systems:
            run = Run("streamscale" if system == "streamscale" else "nginx-rtmp")
            runs.append(run)
            print(f"{run.system}: {args.seconds:g} s publish, {args.gop_s:g} s keyframes "
                  f"({load()})", flush=True)
            if system == "streamscale":
                await run_streamscale(run, args, browser, loop)
            elif isinstance(found, str):
                run.skipped = found
            else:
                await run_nginx(run, args, browser, loop, found)
    results = {run.system: report(run, args) for run in runs}
    if args.dump:
        offset = epoch_offset_s()
        await trio.Path(args.dump).write_text(json.dumps({run.system: {
            "player_started_s": run.player_started_s, "epoch_offset_s": offset,
            "samples": run.samples, "playlist": run.playlist, "trace": run.trace,
            "frames": {i: [f.captured_s, f.published_s, f.dts_ms, f.pts_ms]
                       for i, f in run.published.frames.items()}} for run in runs}))
    ours, peer = results.get("streamscale", []), results.get("nginx-rtmp", [])
    print()
    if ours:
        p50, p95 = percentile(ours, 50), percentile(ours, 95)
        met = p50 <= P50_TARGET_S and p95 <= P95_TARGET_S
        print(f"target p50 <= {P50_TARGET_S:g} s, p95 <= {P95_TARGET_S:g} s: "
              f"{'met' if met else 'NOT met'} (p50 {p50:.3f}, p95 {p95:.3f})")
    if len(ours) >= MIN_FRAMES and len(peer) >= MIN_FRAMES:
        print(f"streamscale / nginx-rtmp: p50 x{percentile(ours, 50) / percentile(peer, 50):.2f}"
              f", p95 x{percentile(ours, 95) / percentile(peer, 95):.2f} (lower is better)")
    else:
        print(f"no ratio: a player decoded too few frames (streamscale {len(ours)}, "
              f"nginx-rtmp {len(peer)}; at least {MIN_FRAMES} each are needed)")
    print(f"{load()}; part_s {args.part_s:g}, segment_s {args.segment_s:g}, "
          f"ladder {args.ladder}; hls.js config "
          f"{'default' if args.hls_config.strip() in ('', '{}') else args.hls_config}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=50, help="publish length per system")
    p.add_argument("--gop-s", type=float, default=2.0, help="publisher keyframe interval")
    p.add_argument("--systems", default="streamscale,nginx")
    p.add_argument("--part-s", type=float, default=0.334, help="MediaConfig.part_s")
    p.add_argument("--segment-s", type=float, default=2.0, help="MediaConfig.segment_s")
    p.add_argument("--ladder", default="source,720p,480p,360p", help="MediaConfig.ladder")
    p.add_argument("--join-after-s", type=float, default=10.0,
                   help="the player joins this long after the publish starts")
    p.add_argument("--warmup-s", type=float, default=8.0,
                   help="displayed frames left out after the player starts")
    p.add_argument("--hls-config", default="{}",
                   help="hls.js settings over its defaults (JSON): an experiment, printed")
    p.add_argument("--dump", default="", help="write every displayed frame's sample here")
    p.add_argument("--no-install", action="store_true", help="never apt-get install nginx")
    return p.parse_args()


if __name__ == "__main__":
    trio.run(main, parse_args())
