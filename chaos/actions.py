"""Actions and probes that drills name as Python providers (`"module": "chaos.actions"`).

Each acts on the running `Drill` (`chaos.drill.current()`); arguments come from the
experiment. Actions change the system or the world around it; probes only look.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from streamscale.testing.rtmp_client import ClientConnection
from streamscale.testing.rtmp_session import RECEIVE_BYTES, _command

from . import accounts
from .ctk import provider
from .drill import current
from .players import PlayerPool

log = logging.getLogger(__name__)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


# -- the broadcast ----------------------------------------------------------------------

@provider
async def start_stream(username: str = "caster", title: str = "chaos drill") -> str:
    """Register and sign in a caster, start a stream; returns its id."""
    drill = current()
    auth = await accounts.sign_in(drill.api, username)
    stream_id, key = await accounts.start_stream(drill.api, auth, title)
    drill.state.update(auth=auth, stream_id=stream_id, key=key)
    return stream_id


@provider
async def stream_status() -> str:
    drill = current()
    r = await drill.api.get(f"/api/streams/{drill.state['stream_id']}")
    return str(r.json()["status"])


@provider
async def publish(name: str = "legit", seconds: float = 60.0, wait_live_s: float = 30.0
                  ) -> str:
    """ffmpeg publishes `seconds` of test pattern with the stream's current key, in the
    background; returns once the stream is live."""
    drill = current()
    url = f"{drill.target.rtmp}/{drill.state['key']}"
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
           "-t", str(float(seconds)), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url]
    process: trio.Process = await drill.nursery.start(partial(
        trio.run_process, cmd, check=False, stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL))
    drill.publishers[name] = process

    async def live_or_exited() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"ffmpeg ({name}) exited with {process.returncode} before "
                               "the stream was live")
        return await _is_live()

    await _until(live_or_exited, wait_live_s, f"the stream is not live {wait_live_s} s "
                 f"after publisher {name} started")
    return "live"


@provider
async def publisher_running(name: str = "legit") -> bool:
    process = current().publishers.get(name)
    return process is not None and process.returncode is None


@provider
async def publishers_running() -> int:
    """How many of the drill's encoders are still broadcasting."""
    return sum(p.returncode is None for p in current().publishers.values())


@provider
async def wait_publisher_cut(name: str = "legit", within_s: float = 10.0) -> bool:
    """Wait for publisher `name` to be disconnected (ffmpeg exits); True if it was."""
    process = current().publishers[name]
    with trio.move_on_after(within_s):
        await process.wait()
    return process.returncode is not None


@provider
async def rotate_key() -> str:
    """Rotate the stream key through the API (the response to a leak); keeps the leaked
    one in state["leaked_key"]."""
    drill = current()
    r = await drill.api.post(f"/api/streams/{drill.state['stream_id']}/key",
                             headers=drill.state["auth"])
    r.raise_for_status()
    drill.state["leaked_key"] = drill.state["key"]
    drill.state["key"] = r.json()["stream_key"]
    return "rotated"


@provider
async def try_publish(key: str = "leaked", timeout_s: float = 10.0) -> str:
    """An RTMP publish with the leaked key (before any leak: a made-up one), or the
    current key; returns "accepted" or "refused: <the server's reason>". The session is
    closed either way."""
    drill = current()
    if key == "leaked":
        stream_key = drill.state.get("leaked_key", "never-issued-key")
    else:
        stream_key = drill.state["key"]
    return await publish_answer(drill.target.rtmp, stream_key, timeout_s)


async def publish_answer(rtmp: str, stream_key: str, timeout_s: float = 10.0) -> str:
    """One scripted RTMP publish of `stream_key` at `rtmp`: "accepted" or "refused: <the
    server's reason>" (its NetStream.Publish status description); the session is closed."""
    parts = urlsplit(rtmp)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1935
    client = ClientConnection()
    with trio.fail_after(timeout_s):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(client.initiate())
            while not (c2 := client.data_to_send()):  # S0 S1 S2 in, C2 out
                client.receive_data(await stream.receive_some(RECEIVE_BYTES))
                client.next_event()  # moves the handshake on
            await stream.send_all(c2)
            await stream.send_all(client.connect("live", rtmp))
            await _command(stream, client, lambda c: c.name == "_result")
            await stream.send_all(client.create_stream())
            await _command(stream, client, lambda c: c.name == "_result")
            await stream.send_all(client.publish(1, stream_key))
            status = await _command(
                stream, client, lambda c: (c.status_code or "").startswith("NetStream.Publish"))
    if status.status_code == "NetStream.Publish.Start":
        return "accepted"
    info = status.args[0] if status.args else {}
    reason = info.get("description") if isinstance(info, dict) else None
    return f"refused: {reason or status.status_code}"


@provider
async def api_read_worst_ms(readers: int = 20) -> float:
    """`readers` concurrent reads of the stream (the hottest API read: every player's page
    polls it); the slowest one's time in ms."""
    drill = current()
    path = f"/api/streams/{drill.state['stream_id']}"
    times_s: list[float] = []

    async def read() -> None:
        start = trio.current_time()
        r = await drill.api.get(path)
        r.raise_for_status()
        times_s.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for _ in range(readers):
            nursery.start_soon(read)
    return round(max(times_s) * 1000, 1)


@provider
async def api_request_ms(path: str = "/api/users/me") -> float:
    """One signed-in GET's time in ms (a read that goes to the database)."""
    drill = current()
    start = trio.current_time()
    r = await drill.api.get(path, headers=drill.state["auth"])
    r.raise_for_status()
    return round((trio.current_time() - start) * 1000, 1)


@provider
async def proxy_bytes(proxy: str = "db") -> int:
    """Bytes the proxy carried both ways (evidence the fault was in the path)."""
    stats = current().proxies[proxy].stats
    return stats.bytes_up + stats.bytes_down


@provider
async def rtmp_reconnect_storm(publishers: int = 20, rounds: int = 3) -> dict[str, object]:
    """`publishers` other casters' encoders (scripted RTMP, no media) connect, publish,
    drop and reconnect all at once, `rounds` times, while the drill's stream goes on."""
    from .process import reconnect_storm

    drill = current()
    keys = []
    for i in range(int(publishers)):
        name = f"storm{i}"
        auth = await accounts.sign_in(drill.api, name)
        _, key = await accounts.start_stream(drill.api, auth, name)
        keys.append(key)
    before = await _ingest_counters(drill)
    result = await reconnect_storm(drill.target.rtmp, keys, rounds=int(rounds))
    after = await _ingest_counters(drill)
    # the ingest's own account of the connections it closed at once (an address over its
    # open-connection limit, a full ingest): the storm client sees those as broken pipes
    server = ({name: after[name] - before.get(name, 0.0) for name in after}
              if before and after else {"unavailable": "the gateway's /metrics did not answer"})
    return {"accepted": result.accepted, "refused": result.refused, "failed": result.failed,
            "ingest_says": server,
            "reasons": result.reasons}


# -- viewers ----------------------------------------------------------------------------

async def _ingest_counters(drill: Any) -> dict[str, float]:
    """The ingest's refusal counters from the gateway's /metrics ({} when unreachable)."""
    from streamscale.testing.metrics import Scrape

    try:
        response = await drill.api.get(f"{drill.target.web}/metrics")
        response.raise_for_status()
    except httpx.HTTPError:
        return {}
    scrape = Scrape.parse(response.text)
    return {name: scrape.value(f"streamscale_ingest_{name}_total")
            for name in ("refused_per_address", "refused_full", "publishes_refused",
                         "protocol_errors")}


@provider
async def start_players(count: int = 4, rendition: str = "160p") -> int:
    """Players of the drill's stream over the CDN pathways (first: CDN a)."""
    drill = current()
    drill.players = PlayerPool(drill.pathways, drill.state["stream_id"], count,
                               rendition=rendition)
    await drill.nursery.start(drill.players.run)
    return count


@provider
async def players_with_parts(window_s: float = 3.0, wait_s: float = 0.0) -> int:
    """How many players got at least one part in the last `window_s` (after `wait_s` of
    watching, so a probe right after a change sees its effect)."""
    if wait_s:
        await trio.sleep(wait_s)  # the observation window itself, not synchronisation
    players = current().players
    return players.players_with_parts(window_s) if players else 0


@provider
async def surge_players(count: int = 10) -> int:
    """`count` more players join at once; returns how many play now."""
    players = current().players
    assert players is not None, "start_players first"
    players.grow(int(count))
    return players.count


@provider
async def share_of_players_with_parts(window_s: float = 3.0) -> float:
    players = current().players
    return round(players.share_with_parts(window_s), 3) if players else 0.0


@provider
async def edge_counters(edge: str = "a1") -> dict[str, int]:
    """The in-process edge's cache counters (hits, misses, upstream fetches, coalesced)."""
    platform = current().platform
    if platform is None:
        raise RuntimeError("edge counters need the in-process platform (not --target)")
    stats = platform.handle("edge", "edges")[edge].stats
    return {"hits": stats.hits, "misses": stats.misses,
            "upstream_requests": stats.upstream_requests, "coalesced": stats.coalesced}


@provider
async def player_error_rate(window_s: float = 5.0) -> float:
    players = current().players
    return round(players.error_rate(window_s), 4) if players else 1.0


@provider
async def player_fetch_counts() -> dict[str, int]:
    """Every fetch the players made so far: ok, failed, and pathway failovers."""
    players = current().players
    if players is None:
        return {"ok": 0, "failed": 0, "failovers": 0}
    failed = sum(not f.ok for f in players.fetches)
    return {"ok": len(players.fetches) - failed, "failed": failed,
            "failovers": players.failovers}


@provider
async def players_on(pathway: str = "b") -> int:
    players = current().players
    return sum(p == pathway for p in players.current) if players else 0


@provider
async def wait_all_players_on(pathway: str = "b", within_s: float = 15.0) -> int:
    """Wait until every player fails over to `pathway`; returns how many are there."""
    players = current().players
    assert players is not None, "start_players first"
    with trio.move_on_after(within_s):
        while not all(p == pathway for p in players.current):  # noqa: ASYNC110
            await trio.sleep(0.1)  # polls the players' own state as they fail over
    return await players_on(pathway)


# -- faults -----------------------------------------------------------------------------

@provider
async def blackhole(proxy: str = "cdn-a") -> str:
    current().proxies[proxy].blackhole = True
    return f"{proxy} blackholed"


@provider
async def add_latency(proxy: str = "cdn-a", latency_s: float = 0.5,
                      jitter_s: float = 0.0) -> str:
    p = current().proxies[proxy]
    p.down.latency_s, p.down.jitter_s = latency_s, jitter_s
    return f"{proxy}: +{latency_s} s"


@provider
async def reset_connections(proxy: str = "cdn-a") -> str:
    current().proxies[proxy].set_reset()
    return f"{proxy} resetting"


@provider
async def clear_faults() -> str:
    """The rollback: every proxy back to a clean wire."""
    for proxy in current().proxies.values():
        proxy.clear()
    return "cleared"


@provider
async def stop_publishers() -> str:
    drill = current()
    for process in drill.publishers.values():
        if process.returncode is None:
            process.terminate()
    return "stopped"


async def _is_live() -> bool:
    return await stream_status() == "live"


async def _until(predicate: object, within_s: float, message: str) -> None:
    assert callable(predicate)
    with trio.move_on_after(within_s):
        while not await predicate():  # noqa: ASYNC110 - polls the platform over HTTP
            await trio.sleep(0.1)
        return
    raise RuntimeError(message)
