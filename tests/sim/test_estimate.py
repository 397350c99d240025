"""The seed's figures, reproduced from the baseline scenario, and where its arithmetic slips."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.estimate import (
    Row,
    estimate,
    implied_bytes_per_message,
    implied_stream_hours_per_day,
    peak_chat_deliveries_per_s,
)
from sim.scenario import load_scenario

BASELINE = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.toml"


@pytest.fixture(scope="module")
def rows() -> dict[str, Row]:
    return {r.quantity.split(" (")[0]: r for r in estimate(load_scenario(BASELINE))}


def test_egress_matches_seed(rows: dict[str, Row]) -> None:
    assert rows["egress 480p"].value == pytest.approx(1120.0)  # 560K @ 2 Mbps
    assert rows["egress 720p"].value == pytest.approx(960.0)  # 240K @ 4 Mbps
    assert rows["egress, seed's two rungs"].value == pytest.approx(2080.0)


def test_seed_egress_counts_only_800k_of_its_1m_viewers(rows: dict[str, Row]) -> None:
    # Off: 560K + 240K = 800K. The other 200K on lower rungs add 164 Gbps.
    assert "800,000 viewers" in rows["egress, seed's two rungs"].note
    assert rows["egress, all 1,000,000 viewers"].value == pytest.approx(2244.0)


def test_recording_storage(rows: dict[str, Row]) -> None:
    day = rows["recording storage per day"].value
    # 10K streams x 2 h x 2 Mbps is 18.0 TB; the seed's 17.6 is that / 1.024 (a binary
    # divisor slipped into decimal units), 2.3% low; 528 TB is 30 x 17.6 and inherits it.
    assert day == pytest.approx(18.0)
    assert "/ 1.024" in rows["recording storage per day"].note  # the table says where 17.6 is from
    month = rows["recording storage, 30 days"]
    assert month.value == pytest.approx(540.0)
    assert month.seed == "~528 TB"  # shown beside ours, not recomputed from our 18.0
    # 17.6 TB/day is 19,556 stream-hours at 2 Mbps, or only 9,778 at 4 Mbps; and it keeps
    # one rung: keeping the whole ladder needs 3.7x.
    assert implied_stream_hours_per_day(17.6, 2000) == pytest.approx(19_556, rel=1e-3)
    assert implied_stream_hours_per_day(17.6, 4000) == pytest.approx(9_778, rel=1e-3)
    assert rows["recording per day, whole ladder kept"].value == pytest.approx(66.6)


def test_chat_storage_implies_489_bytes_per_message(rows: dict[str, Row]) -> None:
    assert rows["chat messages per day"].value == pytest.approx(75.0)
    assert rows["chat storage per month"].value == pytest.approx(1.125)  # 500 B/msg
    # Off: 1.1 TB / (75M x 30) = 489 B per message, ~3x a 155 B chat message on the wire;
    # plausible only with indexes and replicas counted. Raw payload is ~0.35 TB/month.
    assert implied_bytes_per_message(1.1e12, 75e6) == pytest.approx(489, abs=1)
    assert rows["chat storage per month, 155 B wire messages"].value == pytest.approx(0.349,
                                                                                      abs=1e-3)


def test_metadata(rows: dict[str, Row]) -> None:
    assert rows["user data"].value == pytest.approx(8.0)
    assert rows["stream metadata per month"].value == pytest.approx(0.3)


def test_fan_out_is_what_the_seed_leaves_out() -> None:
    # 75M msgs/day is 868 msgs/s; delivered to every member of a Zipf-popular room it is
    # ~19M deliveries/s at peak: ~155 cores at 8 us each, the chat tier's real cost.
    d = peak_chat_deliveries_per_s(load_scenario(BASELINE))
    assert 15e6 < d < 25e6
