"""The run's summary from Locust's CSV: experience figures, error rate, requests/s.

Players report `metric` rows (response_time in ms carries seconds x 1000): `startup`,
`live latency`, `join lateness`, `chat delivery` (percentiles from Locust's histogram,
which rounds to 2 significant digits), and per session `watched` and `rebuffer` (summed
as count x average for the rebuffer ratio). Every other row is a real request.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

METRIC = "metric"


def _rows(stats_csv: Path) -> list[dict[str, str]]:
    with stats_csv.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("Name") != "Aggregated"]


def _float(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "N/A") else 0.0


def summarise(stats_csv: Path, failures_csv: Path | None = None) -> dict[str, Any]:
    rows = _rows(stats_csv)
    metrics = {row["Name"]: row for row in rows if row["Type"] == METRIC}
    requests = [row for row in rows if row["Type"] != METRIC]

    def pct(name: str, key: str) -> float | None:
        row = metrics.get(name)
        if row is None or _float(row, "Request Count") == 0:
            return None
        return _float(row, key) / 1000.0

    def total_s(name: str) -> float:
        row = metrics.get(name)
        if row is None:
            return 0.0
        return _float(row, "Request Count") * _float(row, "Average Response Time") / 1000.0

    watched_s, rebuffer_s = total_s("watched"), total_s("rebuffer")
    count = sum(_float(r, "Request Count") for r in requests)
    failed = sum(_float(r, "Failure Count") for r in requests)
    startup = metrics.get("startup")
    summary: dict[str, Any] = {
        "startup_p95_s": pct("startup", "95%"),
        "startup_p50_s": pct("startup", "50%"),
        "rebuffer_ratio": rebuffer_s / watched_s if watched_s > 0 else None,
        "live_latency_p95_s": pct("live latency", "95%"),
        "live_latency_p50_s": pct("live latency", "50%"),
        "join_lateness_p95_s": pct("join lateness", "95%"),
        "chat_delivery_p99_s": pct("chat delivery", "99%"),
        "sessions": int(_float(startup, "Request Count")) if startup else 0,
        "sessions_without_media": int(_float(startup, "Failure Count")) if startup else 0,
        "watched_s": watched_s,
        "requests": int(count),
        "failures": int(failed),
        "error_rate": failed / count if count else None,
        "requests_per_s": sum(_float(r, "Requests/s") for r in requests),
        "by_name": {f"{r['Type']} {r['Name']}": {
            "count": int(_float(r, "Request Count")), "failures": int(_float(r, "Failure Count")),
            "p50_ms": _float(r, "50%"), "p99_ms": _float(r, "99%")} for r in requests},
    }
    if failures_csv is not None and failures_csv.exists():
        with failures_csv.open(newline="") as f:
            summary["failure_kinds"] = [
                {"method": r["Method"], "name": r["Name"], "error": r["Error"],
                 "occurrences": int(r["Occurrences"])} for r in csv.DictReader(f)]
    return summary


def slo_verdicts(summary: dict[str, Any], slo: Any) -> dict[str, dict[str, Any]]:
    """Each measured figure beside the scenario's SLO; a missing figure fails (no NaN pass)."""
    pairs = {
        "startup_p95_s": slo.startup_p95_s,
        "rebuffer_ratio": slo.rebuffer_ratio,
        "live_latency_p95_s": slo.live_latency_p95_s,
        "chat_delivery_p99_s": slo.chat_delivery_p99_s,
        "error_rate": slo.viewer_error_rate,
    }
    out: dict[str, dict[str, Any]] = {}
    for key, limit in pairs.items():
        value = summary.get(key)
        out[key] = {"measured": value, "slo": limit,
                    "ok": value is not None and value <= limit}
    return out
