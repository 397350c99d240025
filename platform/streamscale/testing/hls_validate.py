"""Check playlists with an independent, strict HLS parser (kuu/hls-parser on Node).

The project's writer and the `m3u8` library both read what we write leniently; a player
that follows RFC 8216bis to the letter does not. `tests/js/validate_hls.mjs` runs
hls-parser with `strictMode: true`; this module keeps one Node process for the whole test
session (a playlist costs a pipe round trip, not a Node start-up) and turns a rejection
into an AssertionError that shows the playlist and the parser's reason.

On top of the parser, `validate` checks the one LL-HLS rule hls-parser reads only by
count: no EXT-X-PART may be more than three target durations from the end of the
playlist (RFC 8216bis 4.4.4.9), measured on the parser's reading of the playlist.

    summaries = validate_all([("master", master), ("720p", media)])
    summary = validate(media)   # raises AssertionError with the text and the error
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "JS_DIR",
    "HLSValidator",
    "Verdict",
    "check_all",
    "ensure_node_modules",
    "part_window_error",
    "validate",
    "validate_all",
]

JS_DIR = Path(__file__).resolve().parents[3] / "tests" / "js"
_SCRIPT = JS_DIR / "validate_hls.mjs"
_PART_WINDOW_SLACK_S = 1e-4  # playlists print five decimals; sums of them drift by less

Playlist = bytes | str
Labelled = Playlist | tuple[str, Playlist]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the strict parser said about one playlist (`summary` is its reading)."""

    label: str
    text: str
    ok: bool
    error: str | None
    summary: dict[str, Any] | None


def ensure_node_modules() -> None:
    """Install tests/js from its lock file if `./dev test` has not (needs npm)."""
    lock = JS_DIR / "package-lock.json"
    marker = JS_DIR / "node_modules" / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed for the strict HLS validator (tests/js)")
    subprocess.run(
        [npm, "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
        check=True,
    )


class HLSValidator:
    """One long-lived `node validate_hls.mjs` process, spoken to over JSON lines."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _process(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            node = shutil.which("node")
            if node is None:
                raise RuntimeError("node is needed for the strict HLS validator (tests/js)")
            ensure_node_modules()
            self._proc = subprocess.Popen(
                [node, str(_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        return self._proc

    def check_all(self, playlists: Iterable[Labelled]) -> list[Verdict]:
        """Parse every playlist; requests are written in one batch, answers read in order."""
        items = [_label(i, p) for i, p in enumerate(playlists)]
        if not items:
            return []
        with self._lock:
            proc = self._process()
            assert proc.stdout is not None
            # Write and read from two threads: a large batch would fill both pipes.
            writer = threading.Thread(
                target=_write_lines, args=(proc, [json.dumps(t) for _, t in items])
            )
            writer.start()
            answers = [proc.stdout.readline() for _ in items]
            writer.join()
        verdicts = []
        for (label, text), line in zip(items, answers, strict=True):
            if not line:
                raise RuntimeError(f"the HLS validator exited (code {proc.poll()})")
            answer = json.loads(line)
            verdicts.append(
                Verdict(label, text, answer["ok"], answer.get("error"), answer.get("summary"))
            )
        return verdicts

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _write_lines(proc: subprocess.Popen[str], lines: Sequence[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("".join(f"{line}\n" for line in lines))
    proc.stdin.flush()


def _label(index: int, item: Labelled) -> tuple[str, str]:
    label, playlist = item if isinstance(item, tuple) else (f"playlist {index}", item)
    text = playlist.decode("utf-8") if isinstance(playlist, bytes) else playlist
    return label, text


_shared = HLSValidator()
atexit.register(_shared.close)


def check_all(playlists: Iterable[Labelled]) -> list[Verdict]:
    """The strict parser's verdicts, without raising (for tests of the validator itself)."""
    return _shared.check_all(playlists)


def part_window_error(summary: dict[str, Any]) -> str | None:
    """RFC 8216bis 4.4.4.9: parts only within three target durations of the playlist end.

    A segment's distance from the end counts from its start, so no listed part lies
    further out. Durations come from the strict parser's reading (EXTINF for complete
    segments, the sum of parts for the open one).
    """
    if summary.get("master"):
        return None
    limit = 3 * float(summary["targetDuration"]) + _PART_WINDOW_SLACK_S
    from_end = 0.0
    for seg in reversed(summary["segments"]):
        parts = [float(d) for d in seg["parts"] if d is not None]
        duration = seg["duration"] if seg["uri"] else sum(parts)
        from_end += float(duration or 0.0)
        if parts and from_end > limit:
            return (
                f"segment {seg['msn']} lists EXT-X-PART tags but starts {from_end:.5f} s from "
                f"the end of the playlist (more than 3 x TARGETDURATION = {limit:.5f} s)"
            )
    return None


def validate_all(playlists: Iterable[Labelled]) -> list[dict[str, Any]]:
    """Strictly parse every playlist; AssertionError naming the first that fails."""
    summaries = []
    for verdict in check_all(playlists):
        error = verdict.error
        if verdict.ok:
            assert verdict.summary is not None
            error = part_window_error(verdict.summary)
        if error is not None:
            raise AssertionError(
                f"strict HLS parser rejected {verdict.label}: {error}\n"
                f"--- playlist ---\n{verdict.text}--- end ---"
            )
        assert verdict.summary is not None
        summaries.append(verdict.summary)
    return summaries


def validate(playlist: Playlist, *, label: str = "playlist") -> dict[str, Any]:
    """Strictly parse one playlist; AssertionError with the text and the error."""
    return validate_all([(label, playlist)])[0]
