"""CDN health: which CDNs can serve players now, from probes of their edges' `/healthz`.

Every `health_interval_s` the prober asks each edge of each CDN for `GET /healthz`
(answered within `health_timeout_s` with 200, or the probe failed). An edge is down after
`health_failures` failed probes in a row and up again after one good probe; a CDN is down
when every one of its edges is down. State changes are logged and bump `version`, which
readers key their cached answers on (the steering manifest, the steered master).

A CDN is a pathway only if players can reach it: its entry edge (the first) has a URL.
An edge configured on port 0 picks a free port when it starts, so its URL is known only
in the process that started it (`current_resources().service_url`); elsewhere such a CDN
is left out, as if no CDN were configured. Each process that needs health (the origin for
steering, the gateway for `playback_url`) runs its own prober over the same config: they
agree within one probe interval, and neither depends on the other being up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import trio

from ...config import CdnConfig, EdgeConfig

log = logging.getLogger(__name__)

Probe = Callable[[str], Awaitable[bool]]  # an edge's base URL -> it answered healthy
Resolve = Callable[[EdgeConfig], "str | None"]


def edge_url(edge: EdgeConfig) -> str | None:
    """Where players and probes reach `edge`; None while it has no usable address (port 0
    and not started in this process)."""
    from ...runtime import current_resources

    try:
        url = current_resources().service_url("edge", edge.name, edge.url)
    except RuntimeError:  # outside the runtime (tests of this module)
        url = edge.url
    if not edge.public_url and edge.port == 0 and url == edge.url:
        return None
    return url.rstrip("/")


class _Edge:
    __slots__ = ("config", "failures", "url")

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.failures = 0  # consecutive failed probes
        self.url: str | None = None


class CdnHealth:
    """Health of each configured CDN. One task (`run`) writes; readers call the getters."""

    def __init__(
        self,
        cdn: CdnConfig,
        *,
        probe: Probe | None = None,
        resolve: Resolve = edge_url,
        observer: str = "",
    ) -> None:
        self.config = cdn
        self.observer = observer  # who probes, for the logs ("origin", "gateway")
        self._probe = probe
        self._resolve = resolve
        self._edges = {name: [_Edge(e) for e in edges] for name, edges in cdn.cdns().items()}
        self._up: dict[str, bool] = dict.fromkeys(self._edges, True)
        self.version = 0
        self._changed = trio.Event()
        self.rounds = 0  # probe rounds completed
        self._snapshot: tuple[tuple[tuple[str, str], ...], tuple[str, ...]] = ((), ())
        self._refresh()

    # -- readers -------------------------------------------------------------------------

    @property
    def pathways(self) -> tuple[tuple[str, str], ...]:
        """(CDN name, entry edge base URL) of every reachable CDN, in configuration order."""
        return self._snapshot[0]

    @property
    def up(self) -> tuple[str, ...]:
        """Reachable CDNs that are up, in configuration order."""
        return self._snapshot[1]

    def is_up(self, cdn: str) -> bool:
        return cdn in self._snapshot[1]

    def first_up(self) -> tuple[str, str] | None:
        """(name, entry URL) of the first CDN up, or None when every CDN is down."""
        up = self._snapshot[1]
        return next(((n, u) for n, u in self._snapshot[0] if n in up), None) if up else None

    async def wait_for_change(self, version: int) -> int:
        """Return once `version` differs from the given one (tests and watchers)."""
        while self.version == version:
            await self._changed.wait()
        return self.version

    # -- the writer ----------------------------------------------------------------------

    def record(self, results: dict[str, bool]) -> None:
        """Apply one round of probe results (edge name -> healthy) to the edges with a
        URL; a missing result is a failure."""
        need = self.config.health_failures
        for cdn, edges in self._edges.items():
            reachable = [e for e in edges if e.url is not None]  # the others: not probed
            if not reachable:
                continue
            for edge in reachable:
                if results.get(edge.config.name):
                    edge.failures = 0
                else:
                    edge.failures += 1
            up = any(e.failures < need for e in reachable)
            if up != self._up[cdn]:
                self._up[cdn] = up
                who = f"{self.observer}: " if self.observer else ""
                if up:
                    log.warning("%sCDN %s is up again", who, cdn)
                else:
                    log.warning("%sCDN %s is down: every edge (%s) failed %d probes in a row",
                                who, cdn, ", ".join(e.config.name for e in reachable), need)
        self.rounds += 1
        self._refresh()

    def _refresh(self) -> None:
        """Re-resolve edge URLs and rebuild the snapshot; bump the version if it changed."""
        pathways = []
        for cdn, edges in self._edges.items():
            for edge in edges:
                edge.url = self._resolve(edge.config)
            if edges[0].url is not None:
                pathways.append((cdn, edges[0].url))
        up = tuple(name for name, _ in pathways if self._up[name])
        snapshot = (tuple(pathways), up)
        if snapshot != self._snapshot:
            self._snapshot = snapshot
            self.version += 1
            self._changed.set()
            self._changed = trio.Event()

    async def probe_round(self, probe: Probe) -> None:
        """Probe every edge with a URL at once, each within `health_timeout_s`."""
        self._refresh()
        results: dict[str, bool] = {}
        timeout_s = self.config.health_timeout_s

        async def one(edge: _Edge, url: str) -> None:
            ok = False
            with trio.move_on_after(timeout_s):
                try:
                    ok = await probe(url)
                except Exception as exc:  # any failure to answer is a failed probe
                    log.debug("probe of edge %s failed: %r", edge.config.name, exc)
            results[edge.config.name] = ok

        async with trio.open_nursery() as nursery:
            for edges in self._edges.values():
                for edge in edges:
                    if edge.url is not None:
                        nursery.start_soon(one, edge, edge.url)
        self.record(results)

    async def run(
        self,
        *,
        shutdown: trio.Event | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Probe every `health_interval_s` until `shutdown` (or cancelled). The first
        round runs before `started`, so the first readers see probed state."""
        stop = shutdown if shutdown is not None else trio.Event()
        async with _probing(self.config.health_timeout_s, self._probe) as probe:
            next_round = trio.current_time() + self.config.health_interval_s
            await self.probe_round(probe)
            task_status.started()
            while True:
                with trio.move_on_at(next_round):
                    await stop.wait()
                if stop.is_set():
                    return
                next_round = trio.current_time() + self.config.health_interval_s
                await self.probe_round(probe)


@asynccontextmanager
async def _probing(timeout_s: float, given: Probe | None) -> AsyncIterator[Probe]:
    """The given probe, or `GET <url>/healthz` over one shared client (200 is healthy)."""
    if given is not None:
        yield given
        return
    async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:

        async def probe(url: str) -> bool:
            response = await client.get(f"{url}/healthz")
            return response.status_code == 200

        yield probe
