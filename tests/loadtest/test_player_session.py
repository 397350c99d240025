"""One HlsPlayer session against canned answers, in a subprocess (Locust's gevent must not
patch the test process): steering, rung choice, hold-back join, CMCD, pathway failover."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HARNESS = Path(__file__).parent / "_player_harness.py"
REPO = Path(__file__).resolve().parents[2]


def test_player_joins_behind_the_edge_and_moves_pathway_on_5xx() -> None:
    done = subprocess.run([sys.executable, str(HARNESS), "0.3"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    played: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    requests = [(url.split("?")[0], name, status) for url, name, status in played["requests"]]
    # the page's API call first (the stream's data), then what hls.js loads
    assert requests.pop(0) == ("http://o/api/streams/s", "stream (join)", 200)
    assert requests[0] == ("http://o/live/s/master.m3u8", "master", 200)
    assert requests[1] == ("http://o/steering.json", "steering", 200)
    # 500 kbps default estimate: the lowest rung, on the first pathway of the priority
    assert requests[2] == ("http://a/live/s/160p/index.m3u8", "playlist", 200)
    assert requests[3] == ("http://a/live/s/160p/init.mp4", "init", 200)
    # the join part (4.2: PART-HOLD-BACK behind the edge, independent) fails on a ...
    assert requests[4] == ("http://a/live/s/160p/4.2.m4s", "part", 503)
    # ... so the player penalises a and reloads the same part from b
    assert requests[5][0] == "http://b/live/s/160p/index.m3u8"
    parts = [url for url, name, status in requests[6:] if name == "part"]
    assert parts[0] == "http://b/live/s/160p/4.2.m4s"
    assert all(url.startswith("http://b/") for url in parts)
    # past the newest listed part (5.1) it waits for the next one with a blocking reload
    blocking = next(url for url, name, _ in played["requests"] if name == "playlist (blocking)")
    assert blocking.startswith("http://b/live/s/160p/index.m3u8?_HLS_msn=5&_HLS_part=2&CMCD=")
    assert "startup" in played["metrics"] and "rebuffer" in played["metrics"]
