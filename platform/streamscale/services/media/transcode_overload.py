"""When a ladder sheds a rung under overload, and when it takes it back.

Pure bookkeeping on the ladder's own readings (no clocks, no I/O): `Ladder.push` feeds
`observe()` once per input frame with media time, the backlog (`behind_s`: how far the
ladder's work runs behind real time) and `load` (ladder seconds per media second,
smoothed over ~2 s). Time here is media time, so a stalled publisher freezes the clock
instead of triggering decisions.

Found from outside before this policy: one start-up burst shed 720p, 480p and 360p within
12 s while the load was already falling (2.39, 1.20, 0.77), and nothing ever restored a
rung. So:
- nothing is decided in the first `warmup_s` of a ladder (codec start-up, the first
  keyframe's decode and x264's thread spin-up cost several times a steady frame);
- a rung is shed only after the backlog has stayed above `shed_behind_s` *and* the load
  above 1 (the backlog still growing) for `shed_sustain_s` without a break: a falling
  load means the ladder is catching up on its own;
- a shed rung comes back once the load with it added back (its own measured share)
  would stay under `restore_load`, the backlog has drained, for `restore_after_s`;
- at most one change per `cooldown_s`, so the two never chase each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Decision = Literal["shed", "restore"]


@dataclass(frozen=True, kw_only=True)
class OverloadPolicy:
    """Thresholds of the overload policy (media config `[media]` keys `shed_*`, `restore_*`)."""

    warmup_s: float = 5.0
    shed_behind_s: float = 1.0
    shed_sustain_s: float = 3.0
    restore_load: float = 0.7
    restore_after_s: float = 15.0
    cooldown_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("warmup_s", "shed_sustain_s", "restore_after_s", "cooldown_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.shed_behind_s <= 0:
            raise ValueError("shed_behind_s must be positive")
        if not 0 < self.restore_load < 1:
            raise ValueError("restore_load must be between 0 and 1 (a fraction of real time)")


class OverloadGovernor:
    """Applies an `OverloadPolicy` to a stream of readings; see the module docstring."""

    def __init__(self, policy: OverloadPolicy | None = None) -> None:
        self.policy = policy or OverloadPolicy()
        self._start_s: float | None = None
        self._over_since: float | None = None  # media time the overload run began
        self._calm_since: float | None = None  # ... the headroom run began
        self._last_change_s = float("-inf")

    def observe(
        self, media_s: float, *, behind_s: float, load: float, restored_load: float | None
    ) -> Decision | None:
        """One reading; returns what to do now, if anything.

        `restored_load` is the load the ladder would have with its next rung to restore
        added back (None when nothing is shed).
        """
        p = self.policy
        if self._start_s is None:
            self._start_s = media_s
        overloaded = behind_s > p.shed_behind_s and load > 1.0
        calm = (restored_load is not None and restored_load < p.restore_load
                and behind_s < 0.1 * p.shed_behind_s)
        self._over_since = (self._over_since if self._over_since is not None else media_s
                            ) if overloaded else None
        self._calm_since = (self._calm_since if self._calm_since is not None else media_s
                            ) if calm else None
        if media_s - self._start_s < p.warmup_s or media_s - self._last_change_s < p.cooldown_s:
            return None
        if self._over_since is not None and media_s - self._over_since >= p.shed_sustain_s:
            return self._changed(media_s, "shed")
        if self._calm_since is not None and media_s - self._calm_since >= p.restore_after_s:
            return self._changed(media_s, "restore")
        return None

    def changed(self, media_s: float) -> None:
        """A change made from outside (a forced shed or restore) starts the cooldown too."""
        self._changed(media_s, None)

    def _changed(self, media_s: float, decision: Decision | None) -> Decision | None:
        self._last_change_s = media_s
        self._over_since = self._calm_since = None
        return decision
