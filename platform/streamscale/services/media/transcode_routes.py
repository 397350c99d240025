"""Which encoder's pictures each rendition carries, and the sheds and restores in waiting.

Pure bookkeeping for `Ladder` (which opens and closes the encoders): a shed rung is never
ended; from the next source keyframe its rendition carries the largest encoder not larger
than it (the smallest if none is, the passthrough if no encoder is left), and a restored
rung its own again. Changes wait for a keyframe because a rendition can switch tracks only
on an IDR, which every encoder makes exactly where the source has a keyframe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .transcode_codec import EncodedFrame


@dataclass(frozen=True, slots=True)
class Route:
    """`track` feeds the rendition from `switch_dts` on, `previous` before (frames an
    encoder still held when the switch came belong to the old track)."""

    track: str
    previous: str = ""
    switch_dts: int = 0

    def takes(self, track: str, dts: int) -> bool:
        return track == self.track if dts >= self.switch_dts else track == self.previous


class RungRoutes:
    """The routes of one ladder's encoded renditions (the passthrough routes to itself)."""

    def __init__(self, shed: Sequence[str] = ()) -> None:
        self.shed: list[str] = list(shed)  # oldest first; restored last shed first
        self.to_shed: list[str] = []  # decided, applied at the next source keyframe
        self.to_restore: list[str] = []
        self.routes: dict[str, Route] = {}

    @property
    def pending(self) -> bool:
        return bool(self.to_shed or self.to_restore)

    @property
    def shed_rungs(self) -> list[str]:
        """Shed, or about to be at the next keyframe; oldest first."""
        return [r for r in self.shed if r not in self.to_restore] + self.to_shed

    @property
    def next_restore(self) -> str | None:
        """What `plan_restore` would bring back (ignoring a pending shed it would cancel)."""
        waiting = [n for n in self.shed if n not in self.to_restore]
        return waiting[-1] if waiting else None

    def track_of(self, name: str) -> str:
        try:
            return self.routes[name].track
        except KeyError:
            raise KeyError(f"no encoded rung {name!r} (served: {list(self.routes)})") from None

    def plan_shed(
        self, active: Iterable[str], *, rate: Callable[[str], float], keep_one: bool
    ) -> str | None:
        """Mark the costliest planned encoder shed; None if none may go (`keep_one`: no
        passthrough, so the last encoder stays)."""
        planned = [n for n in active if n not in self.to_shed] + self.to_restore
        if not planned or (keep_one and len(planned) == 1):
            return None
        name = max(planned, key=rate)
        if name in self.to_restore:
            self.to_restore.remove(name)
        else:
            self.to_shed.append(name)
        return name

    def plan_restore(self) -> str | None:
        """Undo a pending shed, else mark the most recently shed rung for restoring."""
        if self.to_shed:
            return self.to_shed.pop()
        name = self.next_restore
        if name is not None:
            self.to_restore.append(name)
        return name

    def reroute(
        self, dts: int, *, served: Sequence[str], active: Iterable[str],
        rate: Callable[[str], float], passthrough: str | None,
    ) -> None:
        """Point every served encoded rendition at its track from `dts` (see module)."""
        by_rate = sorted(active, key=rate)
        for name in served:
            if name in by_rate:
                track = name
            else:
                smaller = [a for a in by_rate if rate(a) <= rate(name)]
                track = smaller[-1] if smaller else by_rate[0] if by_rate else passthrough or ""
            old = self.routes.get(name)
            if old is None:
                self.routes[name] = Route(track)
            elif old.track != track:
                self.routes[name] = Route(track, old.track, dts)

    def route(self, frames: list[EncodedFrame], passthrough: str | None) -> list[EncodedFrame]:
        """Encoder output to renditions: each rung's own frames, plus copies (tagged with
        `track`) for the shed renditions an encoder stands in for."""
        if all(r.track == n and r.switch_dts == 0 for n, r in self.routes.items()):
            return frames  # nothing shed ever: the common case costs one pass
        out: list[EncodedFrame] = []
        for frame in frames:
            if frame.rung == passthrough:
                out.append(frame)
            for name, route in self.routes.items():
                if route.takes(frame.rung, frame.dts_90k):
                    out.append(frame if name == frame.rung
                               else dataclasses.replace(frame, rung=name, track=frame.rung))
        return out
