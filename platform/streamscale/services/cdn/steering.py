"""HLS Content Steering (RFC 8216bis 7.2): which pathway players should fetch from.

The origin's live master lists every variant once per pathway: one per reachable CDN
(its entry edge's URL) and a last one, `origin`, on the origin itself, with
`EXT-X-CONTENT-STEERING` naming the steering manifest and the first CDN up. Players
(hls.js: content-steering-controller) reload the manifest every TTL seconds and move to
the first pathway of PATHWAY-PRIORITY they have not penalised themselves:

    {"VERSION":1,"TTL":5,"RELOAD-URI":"<origin>/steering/<stream>.json",
     "PATHWAY-PRIORITY":["a","b","origin"]}

CDNs up come first in configuration order, then those down (a player may still reach
them), the origin last; with every CDN down the origin comes first, behind its admission
limit. Bodies and masters are built once per health state (`CdnHealth.version`) and
presentation version, then served as cached bytes.

A reload that has nothing new to say is held, like an LL-HLS blocking playlist reload:
when the player's `_HLS_pathway` is already the first of the priority, the server answers
when health changes or after `hold_s`, whichever is first. The manifest's TTL is then one
second (the smallest HLS allows) and the hold carries the rest of `steering_ttl_s`: a
player reloads a second after each answer, so one of its reloads is waiting here
(steering_ttl_s - 1) / steering_ttl_s of the time and hears of a dead CDN as soon as the
prober does, else within a second, for the same request rate as a plain TTL of
`steering_ttl_s` (the hold is at least a second: with `steering_ttl_s` = 1, a reload every
two seconds, waiting half the time). (With the TTL itself as the hold, a player's reload
waited only half the time, and hls.js players in the CDN outage drill followed steering up
to 3.4 s after it moved.) The hold stays under hls.js's 10 s time to first byte for
steering manifests. A player that sends no `_HLS_pathway` is answered at once and reloads
every second.
"""

from __future__ import annotations

import json

from ...config import ConfigError
from ...protocols.hls import Presentation, steered_master_playlist
from .health import CdnHealth

ORIGIN_PATHWAY = "origin"
HOLD_MAX_S = 8.0  # under hls.js's 10 s time to first byte for the steering manifest
_MAX_CACHED = 10_000  # streams; a crude bound (entries are rebuilt on the next request)


class Steering:
    """Steering manifests and steered masters for the streams an origin serves."""

    def __init__(self, health: CdnHealth, origin_url: str = "") -> None:
        if ORIGIN_PATHWAY in health.config.cdns():
            raise ConfigError(f"cdn.edges: no CDN may be named {ORIGIN_PATHWAY!r} (the "
                              "origin's own content-steering pathway)")
        self.health = health
        period_s = health.config.steering_ttl_s  # a player's reload period
        # at least a second: with steering_ttl_s = 1 a reload still waits half the time
        self.hold_s = min(max(float(period_s - 1), 1.0), HOLD_MAX_S)
        self.ttl_s = 1  # the manifest's TTL
        self.origin_url = origin_url.rstrip("/")
        self._priority: tuple[int, list[str]] = (-1, [])
        self._manifests: dict[str, tuple[int, bytes]] = {}
        self._masters: dict[tuple[str, bool], tuple[Presentation, int, int, bytes]] = {}

    @property
    def active(self) -> bool:
        """Some CDN is reachable: masters list pathways and the manifest is served."""
        return bool(self.health.pathways)

    def priority(self) -> list[str]:
        """PATHWAY-PRIORITY now (see the module docstring)."""
        version = self.health.version
        if self._priority[0] != version:
            names = [name for name, _ in self.health.pathways]
            up = [n for n in names if self.health.is_up(n)]
            down = [n for n in names if n not in up]
            order = [*up, *down, ORIGIN_PATHWAY] if up else [ORIGIN_PATHWAY, *down]
            self._priority = (version, order)
        return self._priority[1]

    def news_for(self, pathway: str) -> bool:
        """Whether a player on `pathway` would be steered elsewhere now."""
        return self.priority()[0] != pathway

    def manifest_uri(self, stream_id: str) -> str:
        return f"{self.origin_url}/steering/{stream_id}.json"

    def manifest(self, stream_id: str) -> bytes:
        """The steering manifest for `stream_id` (the caller checked the id)."""
        version = self.health.version
        cached = self._manifests.get(stream_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        body = json.dumps({
            "VERSION": 1,
            "TTL": self.ttl_s,
            "RELOAD-URI": self.manifest_uri(stream_id),
            "PATHWAY-PRIORITY": self.priority(),
        }, separators=(",", ":")).encode()
        if len(self._manifests) >= _MAX_CACHED:
            self._manifests.clear()
        self._manifests[stream_id] = (version, body)
        return body

    def master(self, stream_id: str, presentation: Presentation, *, low_latency: bool) -> bytes:
        """The multi-pathway master of a live stream (`active` must be true)."""
        key = (stream_id, low_latency)
        version = self.health.version
        cached = self._masters.get(key)
        if (cached is not None and cached[0] is presentation
                and cached[1] == presentation.segment_version and cached[2] == version):
            return cached[3]
        tail = f"/live/{stream_id}/"
        pathways = [(name, f"{url}{tail}") for name, url in self.health.pathways]
        pathways.append((ORIGIN_PATHWAY, f"{self.origin_url}{tail}"))
        data = steered_master_playlist(
            presentation.master_variants(low_latency=low_latency), pathways,
            server_uri=self.manifest_uri(stream_id), default_pathway=self.priority()[0])
        if len(self._masters) >= _MAX_CACHED:
            self._masters.clear()
        self._masters[key] = (presentation, presentation.segment_version, version, data)
        return data

    def forget(self, stream_id: str) -> None:
        """Drop a gone stream's cached bodies."""
        self._manifests.pop(stream_id, None)
        self._masters.pop((stream_id, True), None)
        self._masters.pop((stream_id, False), None)
