"""Shared by the users: the run's settings, its arrival schedule and metric events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote

import gevent  # type: ignore[import-untyped]
from locust.env import Environment

from sim.scenario import Scenario, load_scenario

from ..arrivals import Arrival, ArrivalPlan, chat_arrivals
from ..settings import LoadSettings

LEAD_S = 0.02  # a slot claims a join this long before it is due
METRIC = "metric"  # request_type of experience figures (response_time carries ms)


@cache
def settings() -> LoadSettings:
    return LoadSettings.from_env()


@cache
def scenario() -> Scenario:
    """The run's scenario, read once per generator process."""
    return load_scenario(settings().scenario)


@cache
def plan() -> ArrivalPlan:
    s = settings()
    return ArrivalPlan.from_scenario(scenario(), scale=s.scale,
                                     duration_s=s.duration_s)


@dataclass
class Schedule:
    """The run's joins, handed to whichever player slot is free when each one is due.

    A slot claims a join only when it is due (within `LEAD_S`), so idle slots are never
    tied up waiting for future joins. `start_s` is set once, when the first slot asks.
    """

    arrivals: list[Arrival]
    start_s: float | None = None
    next_index: int = 0

    def take_due(self, now_s: float) -> tuple[float, Arrival] | float | None:
        """(scheduled time on time.monotonic, arrival) if one is due; else seconds until
        the next is; None once every join is taken."""
        if self.start_s is None:
            self.start_s = now_s
        if self.next_index >= len(self.arrivals):
            return None
        arrival = self.arrivals[self.next_index]
        due_s = self.start_s + arrival.at_s
        if due_s - now_s > LEAD_S:
            return due_s - now_s - LEAD_S
        self.next_index += 1
        return due_s, arrival


def next_session(environment: Environment, due: Schedule,
                 lateness: str) -> tuple[float, Arrival] | None:
    """A slot's next session from `due`, begun on time: (scheduled time on time.monotonic,
    arrival) after sleeping until it is due, with how late it began reported as the metric
    `lateness`; None (after a short sleep: call again) while none is due or all are taken.
    Lateness is a session picked up after its time because every slot was busy."""
    taken = due.take_due(time.monotonic())
    if taken is None:  # every session of the run is spoken for: idle until the stop
        gevent.sleep(1.0)
        return None
    if isinstance(taken, float):  # none due yet: look again (a free slot, not a claim)
        gevent.sleep(min(taken, 0.05))
        return None
    scheduled_s, arrival = taken
    delay_s = scheduled_s - time.monotonic()
    if delay_s > 0:
        gevent.sleep(delay_s)
    metric(environment, lateness, max(0.0, -delay_s))
    return scheduled_s, arrival


@cache
def schedule() -> Schedule:
    s = settings()
    if s.fixed_players:  # a closed population for generator benches (bench/players.py)
        return Schedule([Arrival(i / s.fixed_players, s.duration_s + 60)
                         for i in range(s.fixed_players)])
    return Schedule(plan().schedule(s.seed))


_chat_tokens_taken = [0]


def chat_token() -> str | None:
    """The next unused pre-made chat account's access token (None when they ran out)."""
    tokens = settings().chat_tokens
    if _chat_tokens_taken[0] >= len(tokens):
        return None
    _chat_tokens_taken[0] += 1
    return tokens[_chat_tokens_taken[0] - 1]


@cache
def chat_schedule() -> Schedule:
    """The run's chat sessions: the viewers of `schedule()` who open the chat."""
    s = settings()
    return Schedule(chat_arrivals(plan().schedule(s.seed), scenario().workload.chat_join_fraction,
                                  s.seed))


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
