"""An HLS / LL-HLS viewer that loads what hls.js loads, in the order hls.js loads it.

Each Locust user is a player *slot*: it takes the next scheduled join from the run's
arrival schedule, waits for its time, plays one session (the stream's page data from the
API, as a viewer's page asks for it; then master, steering, a rendition's playlist, its
init, then parts behind blocking reloads, switching rendition on measured throughput and
pathway on errors), then takes the next join. Startup is measured from the
*scheduled* join time, so a join that starts late because the generator or the platform
was slow shows up as startup time instead of vanishing (no coordinated omission).

Every HTTP request goes through Locust's FastHttpUser client (one request event each);
startup, rebuffering, live-edge latency and join lateness are `metric` events.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import gevent  # type: ignore[import-untyped]
import m3u8
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from ..hls import (
    Chunk,
    MediaView,
    Playback,
    PlaylistError,
    Throughput,
    blocking_request,
    choose_variant,
    join_point,
    next_chunk,
    parse_media_shared,
    steering_pathway,
)
from ._common import cmcd_query, metric, next_session, schedule, settings, with_query

log = logging.getLogger(__name__)
MAX_ERRORS = 8  # consecutive failed requests before the viewer gives up (abandons)
LATENCY_EVERY_S = 1.0  # how often a live-edge latency sample is reported


@dataclass(frozen=True)
class Variant:
    pathway: str
    rung: str  # STABLE-VARIANT-ID
    bandwidth_bps: float
    uri: str


class _Failed(Exception):
    """A request failed (already reported to Locust); the session decides what next."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status  # 0: no answer (connection refused, reset, timeout)


class HlsPlayer(FastHttpUser):
    """One player slot; sessions follow the run's open arrival schedule."""

    wait_time = constant(0)
    network_timeout = 20.0
    connection_timeout = 5.0
    weight = 100

    def on_start(self) -> None:
        self.settings = settings()

    @task
    def session(self) -> None:
        taken = next_session(self.environment, schedule(), "join lateness")
        if taken is None:
            return
        scheduled_s, arrival = taken
        low_latency = random.random() >= self.settings.classic_share
        _Session(self, scheduled_s, scheduled_s + arrival.session_s, low_latency).play()


class _Session:
    def __init__(self, user: HlsPlayer, scheduled_s: float, end_s: float,
                 low_latency: bool) -> None:
        self.user = user
        self.end_s = end_s
        self.low_latency = low_latency
        self.cmcd = cmcd_query(str(uuid.uuid4()))
        self.playback = Playback(arrival_s=scheduled_s)
        self.throughput = Throughput()
        self.penalised: set[str] = set()
        self.priority: list[str] = []
        self.errors = 0
        self.last_latency_s = 0.0
        self.steering_loop: gevent.Greenlet | None = None

    def get(self, url: str, name: str) -> tuple[bytes, float]:
        """GET with the player's CMCD; (body, seconds taken); raise _Failed on failure."""
        started = time.monotonic()
        with self.user.client.get(with_query(url, self.cmcd), name=name,
                                  catch_response=True) as response:
            elapsed_s = time.monotonic() - started
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                self.errors += 1
                raise _Failed(f"{name}: HTTP {response.status_code}", response.status_code)
            self.errors = 0
            body: bytes = response.content or b""
            return body, elapsed_s

    def play(self) -> None:
        try:
            self._play()
        except (_Failed, PlaylistError) as exc:
            log.debug("session ended early: %s", exc)
        finally:
            if self.steering_loop is not None:
                self.steering_loop.kill(block=False)
            now = time.monotonic()
            watched_s, stalled_s = self.playback.finish(now)
            if self.playback.started_s is None:
                metric(self.user.environment, "startup", now - self.playback.arrival_s,
                       exception=RuntimeError("no media loaded in the session"))
            else:
                metric(self.user.environment, "watched", watched_s)
                metric(self.user.environment, "rebuffer", stalled_s)

    def _master(self) -> list[Variant]:
        body, _ = self.get(self.user.settings.master_url, "master")
        master = m3u8.loads(body.decode(), uri=self.user.settings.master_url)
        variants = [Variant(p.stream_info.pathway_id or ".", p.stream_info.stable_variant_id
                            or p.uri, float(p.stream_info.bandwidth or 0), p.absolute_uri)
                    for p in master.playlists]
        if not variants:
            raise PlaylistError("the master lists no variants")
        steering = master.content_steering
        if steering is not None:
            self.priority = [steering.pathway_id] if steering.pathway_id else []
            self._steer(steering.uri)
            self.steering_loop = gevent.spawn(self._steering_loop, steering.uri)
        return variants

    def _steer(self, uri: str, pathway: str = "") -> float:
        """Load the steering manifest; returns its TTL."""
        url = with_query(uri, f"_HLS_pathway={pathway}") if pathway else uri
        try:
            body, _ = self.get(url, "steering")
        except _Failed:
            return 5.0
        manifest: dict[str, Any] = json.loads(body)
        self.priority = [str(p) for p in manifest.get("PATHWAY-PRIORITY", self.priority)]
        return float(manifest.get("TTL", 5))

    def _steering_loop(self, uri: str) -> None:
        """Reload the manifest every TTL (held by the server when nothing changed)."""
        ttl_s = 5.0
        while time.monotonic() < self.end_s:
            gevent.sleep(ttl_s)
            if time.monotonic() >= self.end_s:
                return
            ttl_s = self._steer(uri, self.priority[0] if self.priority else "")

    def _rung_urls(self, variants: list[Variant]) -> tuple[str, list[Variant]]:
        pathway = steering_pathway(self.priority, [v.pathway for v in variants],
                                   self.penalised)
        return pathway, [v for v in variants if v.pathway == pathway]

    def _page(self) -> None:
        """The stream's data from the API (title, status, playback URL), as a viewer's page
        loads it before the player starts: the API on the join path (sim: join_api_requests)."""
        s = self.user.settings
        with self.user.client.get(f"{s.api_url}/streams/{s.stream_id}", name="stream (join)",
                                  catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                raise _Failed(f"stream (join): HTTP {response.status_code}",
                              response.status_code)

    def _play(self) -> None:
        self._page()
        variants = self._master()
        pathway, rungs = self._rung_urls(variants)
        current = choose_variant([v.bandwidth_bps for v in rungs],
                                 self.throughput.estimate_bps(), -1)
        body, _ = self.get(rungs[current].uri, "playlist")
        view = parse_media_shared(body.decode())
        chunk = join_point(view, low_latency=self.low_latency)
        self._init(rungs[current].uri, view)
        while time.monotonic() < self.end_s and self.errors < MAX_ERRORS:
            try:
                self._load(rungs[current].uri, chunk)
                # ABR: the rung for the next chunk, from throughput measured so far
                best = choose_variant([v.bandwidth_bps for v in rungs],
                                      self.throughput.estimate_bps(), current)
                if best != current:
                    current = best
                    body, _ = self.get(rungs[current].uri, "playlist")
                    view = parse_media_shared(body.decode())
                    self._init(rungs[current].uri, view)
                following = next_chunk(view, chunk, low_latency=self.low_latency)
                while following is None and time.monotonic() < self.end_s:
                    view = self._reload(rungs[current].uri, view, chunk)
                    following = next_chunk(view, chunk, low_latency=self.low_latency)
                if following is None:
                    return
                chunk = following
            except _Failed as failed:
                if self.errors >= MAX_ERRORS:
                    return
                if failed.status == 0 or failed.status >= 500:
                    self.penalised.add(pathway)  # hls.js: penalise the pathway, try the next
                    pathway, rungs = self._rung_urls(variants)
                current = min(current, len(rungs) - 1)
                body, _ = self.get(rungs[current].uri, "playlist")
                view = parse_media_shared(body.decode())
                self._init(rungs[current].uri, view)
                if 0 < failed.status < 500:  # gone from the window: back to the live edge
                    chunk = join_point(view, low_latency=self.low_latency)

    def _init(self, playlist_url: str, view: MediaView) -> None:
        if view.init_uri:
            self.get(urljoin(playlist_url, view.init_uri), "init")

    def _reload(self, playlist_url: str, view: MediaView, after: Chunk) -> MediaView:
        if view.can_block_reload:
            msn, part = blocking_request(view, after)
            if not self.low_latency:
                part = None
            query = f"_HLS_msn={msn}" + ("" if part is None else f"&_HLS_part={part}")
            body, _ = self.get(with_query(playlist_url, query), "playlist (blocking)")
        else:  # classic polling: hls.js reloads every target duration
            gevent.sleep(max(view.target_duration_s, 0.1))
            body, _ = self.get(playlist_url, "playlist")
        return parse_media_shared(body.decode())

    def _load(self, playlist_url: str, chunk: Chunk) -> None:
        body, elapsed_s = self.get(urljoin(playlist_url, chunk.uri),
                                   "part" if chunk.part is not None else "segment")
        self.throughput.sample(elapsed_s, len(body))
        now = time.monotonic()
        startup_s = self.playback.loaded(chunk, now)
        env = self.user.environment
        if startup_s is not None:
            metric(env, "startup", startup_s)
        if now - self.last_latency_s >= LATENCY_EVERY_S:
            latency_s = self.playback.latency_s(now, time.time())
            if latency_s is not None:
                metric(env, "live latency", latency_s)
                self.last_latency_s = now
