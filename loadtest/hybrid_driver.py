"""The hybrid run's origin load: emulated edge (or shield) fetch loops against the real origin.

Run as its own process (`python -m loadtest.hybrid_driver SPEC.json OUT.json`, started by
`loadtest.hybrid`) so its CPU is measured apart from the platform's. Each loop is one cache
that has viewers waiting on one rendition, after coalescing (loadtest.hybrid_pattern):

- LL loop: plain playlist, init once, then forever a blocking reload
  (`_HLS_msn`/`_HLS_part` for the next part) and that part;
- classic loop: the same with `_HLS_msn` only and whole segments;
- steering poller: a player's steering reload (held by the origin up to its hold), then
  the TTL, as every player does directly against the origin.

Each loop has one keep-alive connection with `x-streamscale-edge`, so the origin treats it
as an edge fetch, never a viewer: the lean client (`loadtest.hybrid_http`), or with
`client="h11"` the edge's own `Upstream` (h11) to compare. No httpx (~0.9 ms CPU per
request here, where h11 costs ~0.15 ms).

All loops of a rung wait on the same real part, so they wake in one burst, where 1,500
channels at full scale publish at independent phases. `spread` gives loop i a phase (i x
the golden ratio, mod one part): it asks for its next part that much after the part is
due and counts its figures from sighting + phase, so the origin sees the fleet's smooth
arrivals (its reloads then mostly find the part out, rather than parked).

Coordinated omission. Requests follow the media timeline, not the loop's last answer: a
loop fetches every part the stream publishes (a late loop catches up, skipping none), and
latency is measured from the *intended* time, the moment the driver first saw the object
exist (the first answer, from any loop, that listed it), not from when this loop got round
to sending. A loop that fell behind keeps one reload and one part per part (its reloads are
then answered at once), so the request count stays the fleet's. A slow origin (or a slow
generator) therefore shows as latency, never as requests not sent. For a blocking reload
that waited, that figure is the wake-up spread across every loop parked on the same part;
`service` (answer minus send) is beside it. The generator's own lag (oversleep of a 10 ms
ticker) and CPU are in the result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from streamscale.services.cdn.edge._upstream import Upstream

from .hls import Chunk, MediaView, PlaylistError, blocking_request, next_chunk, parse_media
from .hybrid_http import ClientError, Connection

log = logging.getLogger(__name__)
KINDS = ("playlist", "part", "classic playlist", "segment", "init", "master", "steering")
TICK_S = 0.01
BROKEN, TIMED_OUT, UNPARSABLE = 599, 504, 598  # statuses the driver gives failures
GOLDEN = 0.6180339887498949  # loop i's phase: i x golden ratio mod 1, evenly spread
MAX_SAMPLES = 200_000  # per kind; beyond it every other sample is kept (reservoir-free)


@dataclass(frozen=True, kw_only=True)
class DriverSpec:
    origin_url: str  # http://127.0.0.1:port
    stream_id: str
    loops: tuple[tuple[str, str], ...]  # (rung, "ll" | "classic")
    steering_pollers: int
    duration_s: float
    warmup_s: float  # requests intended before this are not counted
    tail_s: float = 2.0  # nor those intended in the last seconds (answers still on the way)
    timeout_s: float = 10.0  # per request (a blocking reload is held up to 3 targets)
    steering_ttl_s: float = 5.0
    part_s: float = 0.5  # the stream's part and segment durations (the scenario's)
    segment_s: float = 2.0
    # phase-spread loops (`--spread`): loop i stands for a channel whose parts come phase_i
    # later, phases spread evenly over a part; off: every loop waits on the same part
    spread: bool = False
    client: str = "lean"  # "lean" (hybrid_http) or "h11" (the edge's Upstream, to compare)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DriverSpec:
        raw = json.loads(text)
        raw["loops"] = tuple((str(a), str(b)) for a, b in raw["loops"])
        return cls(**raw)


@dataclass
class _Kind:
    intended: list[float] = field(default_factory=list)  # answer - intended time (s)
    service: list[float] = field(default_factory=list)  # answer - send time (s)
    count: int = 0  # answered, intended inside the window
    total: int = 0  # answered over the whole run (the window's warm-up and tail too)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0


class Recorder:
    """Samples per kind inside the measuring window, and when each object was first seen."""

    def __init__(self, start_s: float, spec: DriverSpec) -> None:
        self.window = (start_s + spec.warmup_s, start_s + spec.duration_s - spec.tail_s)
        self.kinds: dict[str, _Kind] = defaultdict(_Kind)
        self.first_seen: dict[tuple[str, int, int | None], float] = {}
        self.lag_s: list[float] = []
        self.ready_after_end_s: list[float] = []  # part listed - (its PDT + duration)

    def seen(self, rung: str, view: MediaView, now_s: float) -> None:
        """Note the newest parts and segments of a playlist answer as available now, and
        for a new part how long after its media ended (PROGRAM-DATE-TIME + duration) it
        was listed: capture clock -> ingest, transcode, package, origin, this answer."""
        for chunks in (view.parts, view.segments):
            for chunk in reversed(chunks):
                key = (rung, chunk.msn, chunk.part)
                if key in self.first_seen:
                    break
                self.first_seen[key] = now_s
                if (chunk.part is not None and chunk.start_epoch_s is not None
                        and self.window[0] <= now_s < self.window[1]):
                    self.ready_after_end_s.append(
                        time.time() - chunk.start_epoch_s - chunk.duration_s)

    def intended(self, rung: str, msn: int, part: int | None, default_s: float) -> float:
        """When the object was first seen; a reload for a part past a segment's last is
        answered by the next segment's part 0 (LL-HLS), so that one stands in for it."""
        seen = self.first_seen.get((rung, msn, part))
        if seen is None and part is not None:
            seen = self.first_seen.get((rung, msn + 1, 0))
        return default_s if seen is None else seen

    def record(self, kind: str, intended_s: float, sent_s: float, done_s: float,
               status: int, size: int) -> None:
        k = self.kinds[kind]
        k.total += status == 200
        if not self.window[0] <= intended_s < self.window[1]:
            return
        if status != 200:
            k.errors[str(status)] += 1
            return
        k.count += 1
        k.bytes += size
        if len(k.intended) < MAX_SAMPLES or k.count % 2 == 0:
            k.intended.append(max(0.0, done_s - intended_s))
            k.service.append(done_s - sent_s)

    def published(self) -> dict[str, int]:
        """Parts (LL) per rung first seen inside the window: what the stream offered."""
        out: Counter[str] = Counter()
        for (rung, _, part), t in self.first_seen.items():
            if part is not None and self.window[0] <= t < self.window[1]:
                out[rung] += 1
        return dict(out)


class _Failed(Exception):
    pass


class _Client:
    """One loop's connection: the lean client (hybrid_http), or the edge's own h11
    `Upstream` (`client="h11"`, to compare). Failures are statuses, never exceptions:
    599 broken or unframable, 504 no answer in time."""

    def __init__(self, spec: DriverSpec, edge_name: str) -> None:
        self._lean = Connection(spec.origin_url, edge_name) if spec.client == "lean" else None
        self._h11 = Upstream(spec.origin_url, edge_name) if spec.client == "h11" else None
        if self._lean is None and self._h11 is None:
            raise ValueError(f"client must be lean or h11, not {spec.client!r}")

    async def __aenter__(self) -> _Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._lean is not None:
            await self._lean.aclose()
        if self._h11 is not None:
            await self._h11.__aexit__(None, None, None)

    async def get(self, target: bytes, timeout_s: float) -> tuple[int, bytes]:
        if self._h11 is not None:
            answer = await self._h11.fetch(target, timeout_s)
            return answer.status, answer.body
        assert self._lean is not None
        try:
            return await self._lean.get(target, timeout_s)
        except ClientError:
            return BROKEN, b""
        except trio.TooSlowError:
            await self._lean.aclose()
            return TIMED_OUT, b""


class Driver:
    def __init__(self, spec: DriverSpec) -> None:
        self.spec = spec
        self.rec = Recorder(trio.current_time(), spec)

    async def _get(self, up: _Client, target: str, kind: str, intended_s: float | None,
                   ) -> tuple[bytes, float]:
        sent = trio.current_time()
        status, body = await up.get(target.encode(), self.spec.timeout_s)
        done = trio.current_time()
        self.rec.record(kind, sent if intended_s is None else intended_s, sent, done,
                        status, len(body))
        if status != 200:
            raise _Failed(f"{kind} {target}: {status}")
        return body, done

    async def _playlist(self, up: _Client, rung: str, target: str, kind: str,
                        want: tuple[int, int | None] | None, phase_s: float = 0.0,
                        ) -> MediaView:
        sent = trio.current_time()
        status, body = await up.get(target.encode(), self.spec.timeout_s)
        done = trio.current_time()
        view: MediaView | None = None
        if status == 200:
            try:
                view = _parse(body)
            except (PlaylistError, UnicodeDecodeError, ValueError):
                status = UNPARSABLE
        if view is not None:
            self.rec.seen(rung, view, done)
        intended = sent if want is None else self.rec.intended(
            rung, *want, default_s=sent - phase_s) + phase_s
        self.rec.record(kind, intended, sent, done, status, len(body))
        if view is None:
            raise _Failed(f"{kind} {target}: {status}")
        return view

    async def loop(self, index: int, rung: str, mode: str) -> None:
        """One emulated cache's fetches for one rendition, until cancelled.

        Synchronised (default): park a blocking reload for the next part at once, as an
        edge with viewers waiting does; every loop on the rung wakes on the same part.
        Spread: this loop's channel publishes `phase` later than the real stream, so it
        sends the reload when its part is due (last part's first sighting + a part +
        phase; a late part still parks it) and its figures count from sighting + phase.
        """
        low_latency = mode == "ll"
        period_s = self.spec.part_s if low_latency else self.spec.segment_s
        phase_s = (index * GOLDEN % 1.0) * period_s if self.spec.spread else 0.0
        base = f"/live/{self.spec.stream_id}/{rung}/"
        reload_kind = "playlist" if low_latency else "classic playlist"
        media_kind = "part" if low_latency else "segment"
        async with _Client(self.spec, f"hybrid-{index}") as up:
            while True:
                try:
                    view = await self._playlist(up, rung, base + "index.m3u8", reload_kind,
                                                None)
                    if view.init_uri:
                        await self._get(up, base + view.init_uri, "init", None)
                    chunks = view.parts if low_latency else view.segments
                    if not chunks:
                        raise _Failed("nothing listed yet")
                    chunk: Chunk = chunks[-1]
                    while True:
                        msn, part = blocking_request(view, chunk)
                        if not low_latency:
                            part = None
                        if phase_s:
                            seen = self.rec.intended(rung, chunk.msn, chunk.part, 0.0)
                            await trio.sleep_until(seen + period_s + phase_s)
                        query = f"_HLS_msn={msn}" + ("" if part is None else f"&_HLS_part={part}")
                        view = await self._playlist(up, rung, f"{base}index.m3u8?{query}",
                                                    reload_kind, (msn, part), phase_s)
                        # one part per reload, as the fleet does per part: a late loop
                        # catches up with reloads that are answered at once, none skipped
                        nxt = next_chunk(view, chunk, low_latency=low_latency)
                        if nxt is None:
                            raise _Failed(f"reload for {msn}.{part} did not list it")
                        intended = self.rec.intended(rung, nxt.msn, nxt.part,
                                                     trio.current_time()) + phase_s
                        await self._get(up, base + nxt.uri, media_kind, intended)
                        chunk = nxt
                except _Failed as exc:
                    log.debug("loop %d: %s; back to the live edge", index, exc)
                    await trio.sleep(0.5)  # a failing origin is retried, not hammered

    async def steering(self, index: int) -> None:
        """A player's steering reloads: held at the origin when nothing changed, then TTL."""
        target = f"/steering/{self.spec.stream_id}.json?_HLS_pathway=a"
        async with _Client(self.spec, f"hybrid-steer-{index}") as up:
            while True:
                with contextlib.suppress(_Failed):  # counted as an error; poll on
                    await self._get(up, target, "steering", None)
                await trio.sleep(self.spec.steering_ttl_s)

    async def ticker(self) -> None:
        """The generator's own lag: how late a 10 ms sleep wakes (its event loop's backlog)."""
        while True:
            t = trio.current_time()
            await trio.sleep(TICK_S)
            late = trio.current_time() - t - TICK_S
            if self.rec.window[0] <= t < self.rec.window[1]:
                self.rec.lag_s.append(late)


def _parse(body: bytes) -> MediaView:
    return _shared(body.decode())


_cache: dict[str, MediaView] = {}


def _shared(text: str) -> MediaView:
    """One parse per distinct playlist body: a rendition's loops wake together with the same
    bytes (loadtest.hls.parse_media_shared keeps 256; this keeps the last few only)."""
    view = _cache.get(text)
    if view is None:
        if len(_cache) > 64:
            _cache.clear()
        view = _cache[text] = parse_media(text)
    return view


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def drive(spec: DriverSpec) -> dict[str, Any]:
    driver = Driver(spec)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = trio.current_time()
    with trio.move_on_after(spec.duration_s):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver.ticker)
            for i, (rung, mode) in enumerate(spec.loops):
                nursery.start_soon(driver.loop, i, rung, mode)
            for i in range(spec.steering_pollers):
                nursery.start_soon(driver.steering, i)
    wall = trio.current_time() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    rec = driver.rec
    window_s = rec.window[1] - rec.window[0]
    kinds = {}
    for name in KINDS:
        k = rec.kinds.get(name)
        if k is None:
            continue
        kinds[name] = {
            "answered": k.count, "answered_whole_run": k.total, "errors": dict(k.errors),
            "req_per_s": k.count / window_s, "bytes_per_s": k.bytes / window_s,
            "from_intended_p50_s": quantile(k.intended, 0.5),
            "from_intended_p99_s": quantile(k.intended, 0.99),
            "service_p50_s": quantile(k.service, 0.5),
            "service_p99_s": quantile(k.service, 0.99),
        }
    return {
        "window_s": window_s, "wall_s": wall, "cpu_s": cpu_s, "cpu_cores": cpu_s / wall,
        "kinds": kinds, "published_parts": rec.published(),
        "ready_after_end_p50_s": quantile(rec.ready_after_end_s, 0.5),
        "ready_after_end_p95_s": quantile(rec.ready_after_end_s, 0.95),
        "ready_after_end_samples": len(rec.ready_after_end_s),
        "lag_p99_s": quantile(rec.lag_s, 0.99), "lag_max_s": max(rec.lag_s, default=None),
        "loops": len(spec.loops), "steering_pollers": spec.steering_pollers,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m loadtest.hybrid_driver SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = DriverSpec.from_json(Path(argv[0]).read_text())
    result = trio.run(drive, spec)
    Path(argv[1]).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
