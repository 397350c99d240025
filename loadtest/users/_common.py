"""Shared by the users: the run's settings, its arrival schedule and metric events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import quote

from locust.env import Environment

from sim.scenario import load_scenario

from ..arrivals import Arrival, ArrivalPlan
from ..settings import LoadSettings

METRIC = "metric"  # request_type of experience figures (response_time carries ms)


@cache
def settings() -> LoadSettings:
    return LoadSettings.from_env()


@cache
def plan() -> ArrivalPlan:
    s = settings()
    return ArrivalPlan.from_scenario(load_scenario(s.scenario), scale=s.scale,
                                     duration_s=s.duration_s)


@dataclass
class Schedule:
    """The run's joins, handed out in order to whichever player slot is free.

    `start_s` is set once, when the first slot asks (the test has started).
    """

    arrivals: list[Arrival]
    start_s: float | None = None
    next_index: int = 0
    taken: list[float] = field(default_factory=list)

    def take(self) -> tuple[float, Arrival] | None:
        """(scheduled wall time on time.monotonic, arrival), or None once all are taken."""
        if self.start_s is None:
            self.start_s = time.monotonic()
        if self.next_index >= len(self.arrivals):
            return None
        arrival = self.arrivals[self.next_index]
        self.next_index += 1
        return self.start_s + arrival.at_s, arrival


@cache
def schedule() -> Schedule:
    return Schedule(plan().schedule(settings().seed))


def metric(environment: Environment, name: str, value_s: float,
           exception: BaseException | None = None) -> None:
    """Report an experience figure as a Locust request of type `metric` (ms)."""
    environment.events.request.fire(  # type: ignore[no-untyped-call]
        request_type=METRIC, name=name, response_time=value_s * 1000.0, response_length=0,
        exception=exception, context={})


def cmcd_query(session_id: str) -> str:
    """`CMCD=sid%3D%22<id>%22`, as hls.js with `cmcd: {}` sends it."""
    return "CMCD=" + quote(f'sid="{session_id}"', safe="")


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"
