"""The run's load shape: open arrivals from the scenario, not a fixed user count.

How coordinated omission is avoided. A closed load generator (N users, each waiting for
its answer before the next request) slows down when the system does, so a stall sends
fewer requests and the slow answers hide. Here *joins* are an open process: every join
time is drawn up front from the scenario's rate (`loadtest.arrivals`: growth plus
replacement, surges included) and does not move when the platform answers slowly. Player
slots (Locust users) pick up the next scheduled join; a join that a slot picks up late,
because every slot was busy or the generator lagged, is reported as `join lateness` and its
startup time is measured from the scheduled time, not from when it began. Inside a
session a player is closed-loop on purpose: that is how a real player behaves (it waits
for a part before asking for the next), and what it suffers shows as rebuffering and
latency, which are measured against the media clock (PROGRAM-DATE-TIME), not against
its own requests.

`StreamscaleShape` sizes the slots from the plan: enough for the concurrency expected over
the next `LOOKAHEAD_S` plus Poisson headroom (`slots_for`), never fewer than before
(stopping a slot would cut a session short), plus the fixed chat, API and streamer users;
it stops the run at its duration. A slot claims a join only when it is due, so idle slots
are free for whichever join comes next.
"""

from __future__ import annotations

from locust import LoadTestShape

from .arrivals import slots_for
from .users._common import plan, settings

LOOKAHEAD_S = 10.0
SPAWN_RATE_PER_S = 50.0


class StreamscaleShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.slots = 0

    def tick(self) -> tuple[int, float] | None:
        s, p = settings(), plan()
        run_s: float = self.get_run_time()  # type: ignore[no-untyped-call]
        if run_s >= s.duration_s:
            return None
        ahead = max(p.viewers(run_s + dt) for dt in (0.0, LOOKAHEAD_S / 2, LOOKAHEAD_S))
        self.slots = max(self.slots, slots_for(ahead))
        fixed = s.chat_users + s.api_users + s.streamers
        return self.slots + fixed, SPAWN_RATE_PER_S
