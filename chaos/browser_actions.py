"""Providers for drills with hls.js players in Chromium (`"module": "chaos.browser_actions"`),
beside the HTTP players of `chaos.actions`. With `count` 0 (`--no-browser`, or the
configuration's `browser_players: 0`) no browser starts and every probe answers for zero
players, so the same experiment is the HTTP-only drill.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from .browser_players import BrowserPlayerPool, unavailable
from .ctk import provider
from .drill import current

log = logging.getLogger(__name__)

STATE_KEY = "browser_players"  # where the drill keeps its pool (Drill.state)


def pool() -> BrowserPlayerPool | None:
    """The drill's hls.js players (None: none started)."""
    found = current().state.get(STATE_KEY)
    return found if isinstance(found, BrowserPlayerPool) else None


@provider
async def start_browser_players(count: int = 2, join_s: float = 60.0) -> int:
    """`count` hls.js players open the stream's playback URL (the API's, through CDN a's
    public address: its fault proxy) in one Chromium; returns once all play."""
    count = int(count)
    if count == 0:
        return 0
    drill = current()
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(f"hls.js players: {reason}")
    if drill.platform is None:
        raise RuntimeError("hls.js players need the drill's own platform (there the CDN "
                           "fault proxies are the CDNs' public addresses); with --target "
                           "run with --no-browser")
    r = await drill.api.get(f"/api/streams/{drill.state['stream_id']}")
    r.raise_for_status()
    cdns = {**drill.pathways, "origin": drill.platform.url("origin", "hls")}
    players = BrowserPlayerPool(r.json()["playback_url"], cdns, count)
    await drill.nursery.start(partial(players.run, join_s=float(join_s)))
    drill.state[STATE_KEY] = players
    log.info("%d hls.js players playing %s", count, players.url)
    return count


@provider
async def browser_players_playing(window_s: float = 3.0) -> int:
    """hls.js players whose picture moved (currentTime advanced) within the last
    `window_s`, without a fatal error."""
    players = pool()
    if players is None:
        return 0
    await players.read_all()
    return players.playing(float(window_s))


@provider
async def browser_players_on(pathway: str = "b") -> int:
    """hls.js players whose newest fragment came from `pathway` ("steered": the pathway
    the platform's content steering puts first now)."""
    players = pool()
    if players is None:
        return 0
    if pathway == "steered":
        pathway = await players.steered() or "origin"
    await players.read_all()
    return players.on(pathway)


@provider
async def wait_all_browser_players_on(pathway: str = "b", within_s: float = 15.0
                                      ) -> dict[str, Any]:
    """Right after a fault: wait until every hls.js player fetches from `pathway`. Per
    player: failover_s (the fault to its first fragment from there, by the page's clock),
    hls_js_on_pathway_s (to the first reading of hls.js on it) and stall_s meanwhile;
    steering_moved_s: the fault to the platform's steering putting `pathway` first."""
    players = pool()
    if players is None:
        return {"on": 0, "players": 0, "failover_s": [], "stall_s": []}
    moved = await players.wait_all_on(pathway, float(within_s))
    times = [f.failover_s for f in moved]
    measured = [t for t in times if t is not None]
    return {"on": players.on(pathway), "players": players.count, "failover_s": times,
            "max_failover_s": max(measured) if len(measured) == len(times) else None,
            "steering_moved_s": players.steering_moved_s,
            "hls_js_on_pathway_s": [f.steered_s for f in moved],
            "stall_s": [f.stall_s for f in moved]}


@provider
async def browser_failovers_within(within_s: float = 8.0) -> int:
    """hls.js players that moved off the last faulted CDN within `within_s` of the fault
    (before any fault: every player, none had to move)."""
    players = pool()
    if players is None:
        return 0
    if players.fault_at_s is None:
        return players.count
    return sum(f.failover_s is not None and f.failover_s <= float(within_s)
               for f in players.failovers)


@provider
async def browser_latency_seconds() -> dict[str, list[float | None]]:
    """Each hls.js player's live latency now: hls.js's `latency` (behind the live edge)
    and Date.now() minus the PROGRAM-DATE-TIME of the playing position."""
    players = pool()
    if players is None:
        return {"latency_s": [], "pdt_latency_s": []}
    latest = await players.read_all()
    return {"latency_s": [None if r.latency_s is None else round(r.latency_s, 2)
                          for r in latest],
            "pdt_latency_s": [None if r.pdt_latency_s is None else round(r.pdt_latency_s, 2)
                              for r in latest]}


@provider
async def browser_stall_seconds() -> float:
    """The worst hls.js player's total stall since its playback started (s)."""
    players = pool()
    if players is None:
        return 0.0
    await players.read_all()
    return round(players.worst_stall_s(), 2)
