"""The `streamscale estimate` and `streamscale sim` console script, run as users run it.

A subprocess of the installed entry point (next to `sys.executable`), so argument parsing,
exit codes, stderr and the report files are checked end to end; kept to a few seconds by
simulating 5 minutes once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.toml"
SCRIPT = Path(sys.executable).parent / "streamscale"


def run(*args: str | Path, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.fail(f"no console script at {SCRIPT}: pip install -e . in this venv")
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout_s, check=False)


def test_estimate_prints_the_seeds_egress() -> None:
    r = run("estimate", BASELINE)
    assert r.returncode == 0, r.stderr
    seed_row = next(line for line in r.stdout.splitlines()
                    if line.startswith("egress, seed's two rungs"))
    assert "2,080.0" in seed_row
    assert "Gbps" in seed_row
    assert "recording storage per day" in r.stdout


def test_sim_writes_a_report(tmp_path: Path) -> None:
    r = run("sim", BASELINE, "--duration-s", "300", "--replications", "1", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "startup_p95_s" in r.stdout  # the verdict table
    d = tmp_path / "baseline"
    assert {p.name for p in d.iterdir()} == {
        "index.html", "result.json", "load.png", "slos.png", "capacity.png"}
    for png in d.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((d / "result.json").read_text())
    assert data["duration_s"] == 300
    assert data["replications"] == 1
    assert data["runs"][0]["passed"] is True
    page = (d / "index.html").read_text()
    assert "viewer_error_rate" in page
    assert "slos.png" in page


def test_unknown_key_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text(f'extends = "{BASELINE}"\n[chat]\ngateway = 10\n')
    for command in ("sim", "estimate"):
        r = run(command, bad, "--out", tmp_path) if command == "sim" else run(command, bad)
        assert r.returncode == 2
        assert f"{bad}: chat.gateway: unknown key" in r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "baseline").exists()


def test_missing_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    r = run("sim", missing, "--out", tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {missing}: no such scenario file"
    assert r.stdout == ""
