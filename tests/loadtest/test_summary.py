"""The summary from Locust's CSV: metric rows are experience figures, others requests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from loadtest.summary import slo_verdicts, summarise

HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
          "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
          "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n")


def _row(kind: str, name: str, count: int, failures: int, avg_ms: float, rps: float,
         p50: float, p95: float, p99: float) -> str:
    return (f"{kind},{name},{count},{failures},{p50},{avg_ms},0,0,0,{rps},0,"
            f"{p50},{p50},{p50},{p50},{p95},{p95},{p99},{p99},{p99},{p99},{p99}\n")


def test_summary_reads_metrics_and_requests(tmp_path: Path) -> None:
    stats = tmp_path / "locust_stats.csv"
    stats.write_text(HEADER
        + _row("GET", "part", 900, 0, 3, 60, 2, 5, 9)
        + _row("GET", "playlist (blocking)", 100, 1, 200, 6.5, 230, 260, 270)
        + _row("metric", "startup", 20, 1, 400, 1, 300, 1800, 2000)
        + _row("metric", "watched", 19, 0, 10_000, 1, 0, 0, 0)
        + _row("metric", "rebuffer", 19, 0, 100, 1, 0, 0, 0)
        + _row("metric", "live latency", 50, 0, 1900, 3, 1900, 2700, 2900)
        + _row("", "Aggregated", 1108, 2, 0, 77, 0, 0, 0))
    failures = tmp_path / "locust_failures.csv"
    failures.write_text("Method,Name,Error,Occurrences\nGET,playlist (blocking),HTTP 503,1\n")
    summary = summarise(stats, failures)
    assert summary["requests"] == 1000 and summary["failures"] == 1
    assert summary["error_rate"] == 0.001
    assert summary["requests_per_s"] == 66.5
    assert summary["startup_p95_s"] == 1.8
    assert summary["live_latency_p95_s"] == 2.7
    assert summary["rebuffer_ratio"] == 0.01  # 19 x 0.1 s over 19 x 10 s
    assert (summary["sessions"], summary["sessions_without_media"]) == (20, 1)
    assert summary["chat_delivery_p99_s"] is None  # no chat row: no figure
    assert summary["by_name"]["GET part"]["count"] == 900
    assert summary["failure_kinds"][0]["error"] == "HTTP 503"

    slo = SimpleNamespace(startup_p95_s=3.0, rebuffer_ratio=0.01, live_latency_p95_s=2.5,
                          chat_delivery_p99_s=1.0, viewer_error_rate=0.001)
    verdicts = slo_verdicts(summary, slo)
    assert verdicts["startup_p95_s"]["ok"] and verdicts["rebuffer_ratio"]["ok"]
    assert not verdicts["live_latency_p95_s"]["ok"]
    assert not verdicts["chat_delivery_p99_s"]["ok"]  # missing is a failure, not a pass
