"""Open arrivals from the scenario files: rates, surges, scaling, a seeded schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.arrivals import (
    MIN_SESSION_S,
    Arrival,
    ArrivalPlan,
    chat_arrivals,
    parse_scale,
    watching,
)
from sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_baseline_scaled_holds_its_viewers_by_replacing_ended_sessions() -> None:
    plan = ArrivalPlan.from_scenario(load_scenario(SCENARIOS / "baseline.toml"),
                                     scale=1e-5, duration_s=60)
    assert plan.time_scale == 60  # an hour in a minute
    assert plan.session_mean_s == 30  # 1800 s / 60
    assert plan.viewers(0) == plan.viewers(59) == pytest.approx(10)
    assert plan.rate_per_s(30) == pytest.approx(10 / 30)  # replacement only
    assert plan.rate_per_s(0.5) == pytest.approx(10 + 10 / 30)  # the initial population
    arrivals = plan.schedule(seed=1)
    assert arrivals == plan.schedule(seed=1)
    # 10 at the start + 60 s x 1/3 per s = 30 expected (Poisson: sd ~5.5)
    assert 15 <= len(arrivals) <= 45
    assert all(a.session_s >= MIN_SESSION_S and 0 <= a.at_s < 60 for a in arrivals)
    assert sorted(a.at_s for a in arrivals) == [a.at_s for a in arrivals]


def test_surge_joins_come_in_the_surge_window() -> None:
    scenario = load_scenario(SCENARIOS / "surge.toml")
    plan = ArrivalPlan.from_scenario(scenario, scale=1e-5, duration_s=120)
    # shape: 2% until minute 5, 100% by minute 10 of 60; on the run's clock 10 s to 20 s
    assert plan.viewers(5) == pytest.approx(0.3)
    assert plan.viewers(20) == pytest.approx(15)
    assert plan.rate_per_s(15) > 10 * plan.rate_per_s(5)
    arrivals = plan.schedule(seed=3)
    in_surge = sum(10 <= a.at_s < 20 for a in arrivals)
    before = sum(1 <= a.at_s < 10 for a in arrivals)
    assert in_surge >= 10 and in_surge > 3 * before
    assert plan.slots() >= 15


@pytest.mark.parametrize(("text", "value"), [("tiny", 1e-5), ("small", 1e-4), ("2e-5", 2e-5)])
def test_scale_names_and_numbers(text: str, value: float) -> None:
    assert parse_scale(text) == value


@pytest.mark.parametrize("text", ["huge", "0", "-1", "2"])
def test_bad_scales_are_refused_with_the_choices(text: str) -> None:
    with pytest.raises(ValueError, match="--scale"):
        parse_scale(text)


def test_a_non_positive_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="duration"):
        ArrivalPlan.from_scenario(load_scenario(SCENARIOS / "baseline.toml"), scale=1e-5,
                                  duration_s=0)


def test_watching_counts_sessions_under_way() -> None:
    arrivals = [Arrival(0.0, 10.0), Arrival(2.0, 6.0), Arrival(9.0, 6.0)]
    assert [watching(arrivals, t) for t in (0.0, 2.0, 8.0, 9.5, 10.0, 15.0)] == [1, 2, 1, 2, 1, 0]


def test_chat_sessions_are_a_share_of_the_viewers_and_surge_with_them() -> None:
    scenario = load_scenario(SCENARIOS / "surge.toml")
    plan = ArrivalPlan.from_scenario(scenario, scale=1e-4, duration_s=120)
    arrivals = plan.schedule(seed=3)
    fraction = scenario.workload.chat_join_fraction
    chat = chat_arrivals(arrivals, fraction, seed=3)
    assert chat == chat_arrivals(arrivals, fraction, seed=3)  # seeded
    assert set(chat) <= set(arrivals)  # a chat session is a viewer's, for its session
    n = len(arrivals)
    sd = (n * fraction * (1 - fraction)) ** 0.5
    assert abs(len(chat) - n * fraction) <= 4 * sd  # binomial thinning
    in_surge = sum(10 <= a.at_s < 20 for a in chat)
    before = sum(1 <= a.at_s < 10 for a in chat)
    assert in_surge > 3 * before  # chat joins surge with the viewers
    assert chat_arrivals(arrivals, 0.0, seed=3) == []
    assert chat_arrivals(arrivals, 1.0, seed=3) == arrivals
