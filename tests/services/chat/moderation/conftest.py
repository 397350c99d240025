"""Shared fixtures: a fake clock and an engine with one channel."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from streamscale.services.chat.moderation import ModerationEngine, Room


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeModel:
    """A toxicity model that returns scripted scores and records its batches."""

    def __init__(self, scores: dict[str, float] | None = None, default: float = 0.0) -> None:
        self.table = scores or {}
        self.default = default
        self.calls: list[list[str]] = []

    def scores(self, texts: Sequence[str]) -> list[float]:
        self.calls.append(list(texts))
        return [self.table.get(t, self.default) for t in texts]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> ModerationEngine:
    return ModerationEngine(clock=clock)


@pytest.fixture
def room(engine: ModerationEngine) -> Room:
    room = engine.open_channel("chan", "owner")
    room.add_moderator("owner", "mod")
    room.add_moderator("owner", "mod2")
    return room
