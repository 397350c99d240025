"""bench/search.py at a small count: the expected pages come out of the catalogue, the
peer's rule is checked, and the typo line refuses a ratio. No timing assertions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Appended, not prepended: bench/sim.py must not shadow the `sim` package.
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

import search


def test_expected_pages_follow_each_rule() -> None:
    cat = search.make_catalogue(2000)
    words = search.Query(name="", q="minecraft")
    prefix = search.expected_page(cat, words, substring=False)
    assert prefix and prefix == search.expected_page(cat, words, substring=True)
    viewers = {s["id"]: s["viewer_count"] for s in cat.streams}
    assert [viewers[i] for i in prefix] == sorted((viewers[i] for i in prefix), reverse=True)
    typo = search.Query(name="", q="minecarft")
    assert search.expected_page(cat, typo, substring=False) == []


async def test_small_run_prints_ratios_and_refuses_the_typo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await search.main(["--streams", "3000", "--repeat", "2", "--backends", "sqlite"])
    out = capsys.readouterr().out
    lines = {line.split("'")[1]: line for line in out.splitlines() if line.count("'") >= 2}
    assert "no ratio: typo" in lines["minecarft"]
    assert lines["valorant ranked"].rstrip().endswith("x")
    assert "differs" not in out
