"""What the `streamscale load` process tells the Locust subprocess (one env var, JSON).

Kept free of Locust and trio so both sides import it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

ENV = "STREAMSCALE_LOAD"


@dataclass(frozen=True, kw_only=True)
class LoadSettings:
    scenario: str  # path of the scenario TOML
    scale: float
    duration_s: float
    seed: int = 1
    api_url: str  # http://127.0.0.1:port/api
    chat_url: str  # ws://127.0.0.1:port/chat
    rtmp_url: str  # rtmp://127.0.0.1:port/live ("" = no streamer users)
    stream_id: str
    master_url: str  # the playback_url the API gives for the stream
    classic_share: float = 0.0  # players that load whole segments instead of parts
    chat_users: int = 0  # chat slots; sessions follow the chat schedule
    # access tokens of accounts made before the run, one per chat slot: signing up (an
    # argon2 hash on the server) is not what a returning viewer does when opening the chat
    chat_tokens: tuple[str, ...] = ()
    api_users: int = 0
    streamers: int = 0
    password: str = "load pass word 1"  # of the accounts the users register
    fixed_players: int = 0  # benches: this many join in the first second, watch to the end

    def to_env(self) -> dict[str, str]:
        return {ENV: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls) -> LoadSettings:
        raw = os.environ.get(ENV)
        if not raw:
            raise RuntimeError(f"{ENV} is not set: run this locustfile through `streamscale load`")
        data = json.loads(raw)
        data["chat_tokens"] = tuple(data.get("chat_tokens", ()))
        return cls(**data)
