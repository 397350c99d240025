"""`streamscale load --target`: the load run against a platform someone else started (an
SRE's running `streamscale up`), not one it starts itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from streamscale.testing.up import streamscale_up, up_env

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_load_against_a_running_platform(tmp_path: Path) -> None:
    # the run's own sign-ups all come from 127.0.0.1: an operator raises the per-address
    # limits for a load run, as `streamscale load` does for the platform it starts
    env = up_env(tmp_path / "var", STREAMSCALE_GATEWAY__LOGIN_RATE_PER_MINUTE="100000",
                 STREAMSCALE_GATEWAY__WRITE_RATE_PER_MINUTE="100000")
    out = tmp_path / "load"
    async with streamscale_up(tmp_path, env=env) as (_, urls, _lines):
        base = urls["api"].removesuffix("/api")
        done = await trio.run_process(
            [sys.executable, "-m", "streamscale.cli", "load", "baseline", "--target", base,
             "--chat-url", urls["ws"], "--duration", "15", "--out", str(out)],
            cwd=REPO, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert summary["target"] == base
    by_name = summary["by_name"]
    assert by_name["GET part"]["count"] > 0 and by_name["GET part"]["failures"] == 0
    assert summary["sessions"] > 0 and summary["sessions_without_media"] == 0
    assert by_name["WS send->ack"]["count"] > 0  # chat users reached the target's gateway
    # the target's own /metrics gave the origin's figures; the probe went via the master
    assert summary["origin_requests_per_s"] > 0
    assert summary["deployment"]["errors"] == [] and summary["deployment"]["parts_followed"] > 0
    assert summary["cdns"] is None  # the target's CDNs are not this process's config


@pytest.mark.slow
async def test_a_target_that_refuses_the_runs_sign_ups_is_named(tmp_path: Path) -> None:
    env = up_env(tmp_path / "var", STREAMSCALE_GATEWAY__LOGIN_RATE_PER_MINUTE="2")
    async with streamscale_up(tmp_path, env=env) as (_, urls, _lines):
        base = urls["api"].removesuffix("/api")
        done = await trio.run_process(
            [sys.executable, "-m", "streamscale.cli", "load", "baseline", "--target", base,
             "--chat-url", urls["ws"], "--duration", "10", "--out", str(tmp_path / "load")],
            cwd=REPO, capture_stdout=True, capture_stderr=True, check=False)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 2, err[-3000:]
    assert "rate-limited the run's own" in err and "login_rate_per_minute" in err
