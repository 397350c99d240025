"""Locust entry point of bench/players.py: the player beside a plain Locust HttpUser.

`HlsPlayer` is the load run's player (fixed population: `fixed_players` join in the first
second). `PlainPeer` is what a plain Locust script would do for the same viewer: a
requests-based HttpUser polling the rendition's playlist every part and fetching the
newest part (about the player's request rate, none of its logic). Both report
`generator lag`: how late a 100 ms sleep in the generator wakes (its own event loop's
backlog) after the first `LAG_FROM_S`, the honesty check of every figure it measures.
"""

from __future__ import annotations

import time
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import HttpUser, constant_pacing, events, task

from loadtest.users._common import cmcd_query, metric, settings, with_query
from loadtest.users.player import HlsPlayer

LAG_PROBE_S = 0.1
LAG_FROM_S = 3.0  # spawning and joins settle first (bench/players.py skips them too)


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _probe_lag(environment: Any, **_: Any) -> None:
    def probe() -> None:
        gevent.sleep(LAG_FROM_S)
        while True:
            started = time.monotonic()
            gevent.sleep(LAG_PROBE_S)
            metric(environment, "generator lag", time.monotonic() - started - LAG_PROBE_S)

    gevent.spawn(probe)


class PlainPeer(HttpUser):
    wait_time = constant_pacing(0.25)

    def on_start(self) -> None:
        s = settings()
        master = self.client.get(s.master_url, name="master").text
        first = next(line for line in master.splitlines() if line and line[0] != "#")
        self.playlist_url = first
        self.base = first.rsplit("/", 1)[0]
        self.cmcd = cmcd_query(f"plain-{id(self)}")

    @task
    def poll(self) -> None:
        text = self.client.get(with_query(self.playlist_url, self.cmcd), name="playlist").text
        parts = [line.split('URI="', 1)[1].split('"', 1)[0]
                 for line in text.splitlines() if line.startswith("#EXT-X-PART:")]
        if parts:
            self.client.get(with_query(f"{self.base}/{parts[-1]}", self.cmcd), name="part")


__all__ = ["HlsPlayer", "PlainPeer"]
