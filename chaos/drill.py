"""What a drill's actions and probes act on: the platform's addresses, the fault proxies
in front of its CDN pathways, the publishers and players the drill started, and a nursery
for background work. One `Drill` per run, reachable from providers by `current()`.

`open_drill` starts the platform in-process (gateway, media, origin, edge with one edge on
CDN a and one on CDN b, short segments) or targets a running one, and puts a TCP fault
proxy in front of each CDN pathway, so players reach CDN a through `proxies["cdn-a"]`;
on PostgreSQL (`database="postgres"`), another in front of the database (`proxies["db"]`).
In-process, each proxy is its CDN's public address (the edge's `public_url`): the
playback URL, the steered master, and the origin's and gateway's health probes all go
through it, so a fault on `cdn-a` is CDN a's outage for every player (hls.js in Chromium
too) and for the platform's failover. With `--target` only the drill's HTTP players go
through the proxies.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from .players import PlayerPool
from .proxy import FaultProxy, open_proxy

log = logging.getLogger(__name__)

_CURRENT: contextvars.ContextVar[Drill] = contextvars.ContextVar("chaos_drill")
SERVICES = ("gateway", "media", "origin", "edge")


@dataclass(frozen=True)
class Target:
    """Where the platform answers: the gateway's base URL, RTMP ingest, CDN pathways."""

    web: str  # e.g. http://127.0.0.1:8080 (the API is under /api)
    rtmp: str  # e.g. rtmp://127.0.0.1:1935/live
    cdns: dict[str, str]  # pathway name -> edge base URL


@dataclass
class Drill:
    target: Target
    nursery: trio.Nursery
    api: httpx.AsyncClient
    proxies: dict[str, FaultProxy] = field(default_factory=dict)  # "cdn-a" -> proxy
    players: PlayerPool | None = None
    publishers: dict[str, trio.Process] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # stream id, keys, tokens
    platform: Any = None  # the in-process RunningPlatform, if the drill started one

    @property
    def pathways(self) -> dict[str, str]:
        """CDN pathways as players reach them: through each CDN's fault proxy."""
        return {name: f"http://{self.proxies[f'cdn-{name}'].address}"
                for name in self.target.cdns}


_OPEN: list[Drill] = []  # for calls from outside the drill's tasks (chaos.ctk)


def current() -> Drill:
    try:
        return _CURRENT.get()
    except LookupError:
        if _OPEN:
            return _OPEN[-1]
        raise RuntimeError("no drill is running (chaos.drill.open_drill)") from None


@asynccontextmanager
async def open_drill(target: Target | None = None, *, data_dir: Path | None = None,
                     start_platform: bool = True, database: str = "sqlite",
                     media: Mapping[str, Any] | None = None) -> AsyncIterator[Drill]:
    """A Drill on `target`, or on a platform started here for the drill's length (none
    if not `start_platform`: the drill starts its own service processes). The drill's
    background work (players, publishers) stops before the platform does. `media`: the
    started platform's `[media]` settings that differ from the drills' default (the
    ladder, transcode capacity, the overload policy)."""
    if target is None and not start_platform:
        target = Target(web="http://127.0.0.1:9", rtmp="", cdns={})
    if target is not None:
        async with _drill(target) as drill:
            yield drill
    else:
        async with _platform(data_dir, database, media or {}) as (platform, started, proxies), \
                _drill(started, proxies) as drill:
            drill.platform = platform
            drill.proxies.update(proxies)
            yield drill


@asynccontextmanager
async def _drill(target: Target, made: dict[str, FaultProxy] | None = None
                 ) -> AsyncIterator[Drill]:
    async with trio.open_nursery() as nursery, \
            httpx.AsyncClient(base_url=target.web, timeout=30) as api:
        drill = Drill(target, nursery, api)
        for name, url in target.cdns.items():
            if f"cdn-{name}" in (made or {}):  # the platform's own (its public address)
                continue
            parts = urlsplit(url)
            drill.proxies[f"cdn-{name}"] = await open_proxy(
                nursery, parts.hostname or "127.0.0.1", parts.port or 80)
        token = _CURRENT.set(drill)
        _OPEN.append(drill)
        try:
            yield drill
        finally:
            _OPEN.remove(drill)
            _CURRENT.reset(token)
            for process in drill.publishers.values():
                if process.returncode is None:
                    process.kill()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def _platform(data_dir: Path | None, database: str, media: Mapping[str, Any]
                    ) -> AsyncIterator[tuple[Any, Target, dict[str, FaultProxy]]]:
    from streamscale.config import CdnConfig, EdgeConfig, MediaConfig
    from streamscale.testing import make_config, running_platform

    with tempfile.TemporaryDirectory(prefix="streamscale-chaos-") as tmp:
        async with _database(database) as (storage_url, proxies), \
                trio.open_nursery() as proxy_nursery:
            for cdn in ("a", "b"):  # upstream set once the edge has its port
                proxies[f"cdn-{cdn}"] = await open_proxy(proxy_nursery, "127.0.0.1", 9)
            config = make_config(data_dir or Path(tmp), storage_url=storage_url, cdn=CdnConfig(
                edges=tuple(EdgeConfig(name=f"{cdn}1", cdn=cdn,
                                       public_url=f"http://{proxies[f'cdn-{cdn}'].address}")
                            for cdn in ("a", "b"))))
            config = dataclasses.replace(config, media=MediaConfig(
                rtmp_port=0, reconnect_grace_s=5.0, ladder="source,160p", segment_s=1.0,
                part_s=0.25, key_check_s=0.25))
            config = dataclasses.replace(config, media=dataclasses.replace(config.media, **media))
            async with running_platform(config, SERVICES) as platform:
                edges = platform.handle("edge", "edges")
                assert isinstance(edges, dict)
                for edge in edges.values():
                    proxy = proxies[f"cdn-{edge.cdn}"]
                    proxy.upstream_port = urlsplit(edge.url).port or 80
                target = Target(
                    web=platform.api_url.removesuffix("/api"),
                    rtmp=platform.url("media", "rtmp"),
                    cdns={edge.cdn: edge.url for edge in edges.values()},
                )
                log.info("drill platform: %s", target)
                yield platform, target, proxies
            proxy_nursery.cancel_scope.cancel()


@asynccontextmanager
async def _database(database: str) -> AsyncIterator[tuple[str, dict[str, FaultProxy]]]:
    """"sqlite": the data dir's file. "postgres": a fresh schema in PostgreSQL at
    127.0.0.1:5432 (database test, STREAMSCALE_CHAOS_POSTGRES to change), reached through
    a fault proxy (`proxies["db"]`), dropped afterwards."""
    if database == "sqlite":
        yield "", {}
        return
    if database != "postgres":
        raise ValueError(f"database must be sqlite or postgres, not {database!r}")
    import psycopg

    from .process import slow_database

    base = os.environ.get("STREAMSCALE_CHAOS_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"chaos_{secrets.token_hex(4)}"

    def ddl(statement: str) -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(statement)

    await trio.to_thread.run_sync(ddl, f"CREATE SCHEMA {schema}")
    try:
        async with trio.open_nursery() as nursery:
            url = base.replace("postgresql://", "postgresql+psycopg://", 1)
            proxy, proxied = await slow_database(
                nursery, f"{url}?options=-csearch_path%3D{schema}", latency_s=0.0)
            yield proxied, {"db": proxy}
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(ddl, f"DROP SCHEMA {schema} CASCADE")
