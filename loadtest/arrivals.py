"""Open arrivals from a scenario: when each viewer joins, scheduled before anyone answers.

A scenario gives concurrency over time: `peak_viewers` times the piecewise-linear
`shape`, with exponential sessions of mean `session_mean_s`. Viewers join at

    rate(t) = max(0, dN/dt) + N(t) / session_mean_s

(growth plus replacement of those whose session ended), which holds N(t) in steady state
and makes a surge of +X viewers a minute a burst of X joins a minute.

Scaled down for one box by two stated factors: `scale` multiplies viewers (1e-5 turns
1M into 10) and `time_scale` = scenario duration / run duration compresses the timeline
and the sessions with it (an hour in 60 s: surges keep their shape, sessions last
1800/60 = 30x shorter, at least `MIN_SESSION_S`).

The schedule is a seeded Poisson process (thinning), computed up front: a join happens at
its time whether or not the system has answered anyone yet. That is how the load run
avoids coordinated omission (see `loadtest.shapes`).
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from sim.scenario import Scenario

MIN_SESSION_S = 6.0  # a compressed session still joins, plays and leaves
NAMED_SCALES = {"tiny": 1e-5, "small": 1e-4, "medium": 1e-3}


def parse_scale(text: str) -> float:
    """`tiny`, `small`, `medium`, or a positive fraction such as 2e-5."""
    if text in NAMED_SCALES:
        return NAMED_SCALES[text]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--scale must be one of {sorted(NAMED_SCALES)} or a number, "
                         f"not {text!r}") from None
    if not 0 < value <= 1:
        raise ValueError(f"--scale must be in (0, 1], not {value}")
    return value


@dataclass(frozen=True)
class ArrivalPlan:
    """A scenario's workload on the run's clock (seconds since the run started)."""

    points: tuple[tuple[float, float], ...]  # (run time s, concurrent viewers)
    session_mean_s: float
    duration_s: float
    scale: float
    time_scale: float

    @classmethod
    def from_scenario(cls, scenario: Scenario, *, scale: float, duration_s: float) -> ArrivalPlan:
        if duration_s <= 0:
            raise ValueError(f"duration must be positive, not {duration_s}")
        time_scale = scenario.run.duration_s / duration_s
        peak = scenario.workload.peak_viewers * scale
        points = tuple((t / time_scale, peak * frac) for t, frac in scenario.workload.shape)
        if points[0][0] > 0:
            points = ((0.0, points[0][1]), *points)
        session_s = max(scenario.workload.session_mean_s / time_scale, MIN_SESSION_S)
        return cls(points, session_s, duration_s, scale, time_scale)

    def viewers(self, t_s: float) -> float:
        """Target concurrency at run time `t_s` (linear between shape points)."""
        times = [p[0] for p in self.points]
        i = bisect.bisect_right(times, t_s)
        if i == 0:
            return self.points[0][1]
        if i >= len(self.points):
            return self.points[-1][1]
        (t0, n0), (t1, n1) = self.points[i - 1], self.points[i]
        return n0 + (n1 - n0) * (t_s - t0) / (t1 - t0) if t1 > t0 else n1

    def rate_per_s(self, t_s: float) -> float:
        """Joins per second at `t_s`; the initial population arrives in the first second."""
        dt = 0.01
        growth = max(0.0, (self.viewers(t_s + dt) - self.viewers(t_s)) / dt)
        initial = self.points[0][1] if t_s < 1.0 else 0.0
        return growth + self.viewers(t_s) / self.session_mean_s + initial

    def peak_rate_per_s(self) -> float:
        samples = [i * self.duration_s / 400 for i in range(401)]
        return max(self.rate_per_s(t) for t in samples)

    def peak_viewers(self) -> float:
        return max(n for _, n in self.points)

    def schedule(self, seed: int) -> list[Arrival]:
        """Every join of the run (Poisson by thinning), with its session length."""
        rng = random.Random(seed)
        peak = self.peak_rate_per_s()
        out: list[Arrival] = []
        if peak <= 0:
            return out
        t = 0.0
        while True:
            t += rng.expovariate(peak)
            if t >= self.duration_s:
                return out
            if rng.random() * peak <= self.rate_per_s(t):
                session_s = max(rng.expovariate(1 / self.session_mean_s), MIN_SESSION_S)
                out.append(Arrival(t, session_s))

    def slots(self) -> int:
        """Locust users to hold the plan: peak concurrency plus Poisson headroom."""
        return slots_for(self.peak_viewers())


def chat_arrivals(arrivals: list[Arrival], fraction: float, seed: int) -> list[Arrival]:
    """The viewers who open the chat: each arrival, with probability `fraction` (the
    scenario's `chat_join_fraction`), for its whole session. A thinned Poisson process is
    Poisson: chat joins surge with viewer joins."""
    rng = random.Random(seed + 1)  # its own stream: the viewers' schedule does not move
    return [a for a in arrivals if rng.random() < fraction]


def slots_for(viewers: float) -> int:
    """Player slots for `viewers` concurrent sessions: Poisson arrivals overshoot the
    mean (about +3 standard deviations, sqrt(N)), and a slot is busy for a whole session."""
    return max(2, math.ceil(1.2 * (viewers + 3 * math.sqrt(viewers))) + 2)


@dataclass(frozen=True)
class Arrival:
    at_s: float  # scheduled join time, seconds since the run started
    session_s: float


def watching(arrivals: list[Arrival], t_s: float) -> int:
    """Sessions of the schedule under way at `t_s` (what the platform should count)."""
    return sum(a.at_s <= t_s < a.at_s + a.session_s for a in arrivals)
