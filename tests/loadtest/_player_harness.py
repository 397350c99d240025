"""Run as a subprocess by test_player_session.py: imports Locust (gevent patches this
process), plays one HlsPlayer session against canned answers, prints what it fetched.

Pathway "a" answers parts with 503; "b" serves them. Master and steering on "o".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loadtest.settings import LoadSettings

RECORDED = (Path(__file__).parent / "data" / "ll_160p.m3u8").read_text()
MASTER = "#EXTM3U\n#EXT-X-VERSION:6\n" + \
    '#EXT-X-CONTENT-STEERING:SERVER-URI="http://o/steering.json",PATHWAY-ID="a"\n' + "".join(
        f'#EXT-X-STREAM-INF:BANDWIDTH={bw},STABLE-VARIANT-ID="{rung}",PATHWAY-ID="{path}"\n'
        f"http://{path}/live/s/{rung}/index.m3u8\n"
        for path in ("a", "b") for rung, bw in (("360p", 979480), ("160p", 384704)))
STEERING = json.dumps({"VERSION": 1, "TTL": 5, "PATHWAY-PRIORITY": ["a", "b"]})


class Answer:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code, self.content = status, content
        self.failed: str | None = None

    def failure(self, why: str) -> None:
        self.failed = why

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Client:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, int]] = []

    def get(self, url: str, name: str, catch_response: bool = False) -> Answer:
        path = url.split("?")[0]
        host = path.split("/")[2]
        if path == "http://o/api/streams/s":  # the page's API call: no CMCD there
            answer = Answer(200, b'{"id": "s", "status": "live"}')
            self.log.append((url, name, answer.status_code))
            return answer
        assert "CMCD=sid%3D%22" in url, url
        if path.endswith("master.m3u8"):
            answer = Answer(200, MASTER.encode())
        elif path.endswith("steering.json"):
            answer = Answer(200, STEERING.encode())
        elif path.endswith("index.m3u8"):
            answer = Answer(200, RECORDED.encode())
        elif host == "a" and not path.endswith("init.mp4"):
            answer = Answer(503, b"")
        else:
            answer = Answer(200, b"x" * 1000)
        self.log.append((url, name, answer.status_code))
        return answer


def main() -> None:
    os.environ.update(LoadSettings(
        scenario="scenarios/baseline.toml", scale=1e-5, duration_s=10, api_url="http://o/api",
        chat_url="", rtmp_url="", stream_id="s", master_url="http://o/live/s/master.m3u8",
    ).to_env())
    from loadtest.users.player import _Session

    metrics: list[str] = []
    events = SimpleNamespace(request=SimpleNamespace(
        fire=lambda **kw: metrics.append(kw["name"]) if kw["request_type"] == "metric" else None))
    client = Client()
    user: Any = SimpleNamespace(client=client, environment=SimpleNamespace(events=events),
                                settings=LoadSettings.from_env())
    now = time.monotonic()
    _Session(user, now, now + float(sys.argv[1]), low_latency=True).play()
    print(json.dumps({"requests": client.log, "metrics": metrics}))


if __name__ == "__main__":
    main()
