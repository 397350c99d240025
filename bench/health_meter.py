"""Ingest health on the tag path: what `HealthMeter.tag` adds per FLV tag, beside the work
already there.

The peer, measured in the same run, is `flv.parse_video` of the same tag (which the
pipeline does for every video tag anyway); the meter's share is printed as a ratio, and
per second of a 30 fps stream with audio (~73 tags/s). Also `snapshot` (every
analytics.health_sample_s, not per tag). The machine is shared with other jobs: read
the ratios, not the absolute times. Prints figures; asserts nothing.

    .venv/bin/python bench/health_meter.py [--tags 200000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from streamscale.protocols import flv
from streamscale.services.media.health import HealthMeter

NALU = (1200).to_bytes(4, "big") + b"\x41" + b"x" * 1199  # one 1.2 KB inter slice


def per_call_ns(fn: Callable[[int], None], n: int) -> float:
    started = time.perf_counter_ns()
    for i in range(n):
        fn(i)
    return (time.perf_counter_ns() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=200_000)
    n = parser.parse_args().tags
    video = bytes([0x27, 0x01, 0, 0, 0]) + NALU
    audio = bytes([0xAF, 0x01]) + b"a" * 300
    meter = HealthMeter(0.0)

    def tag_video(i: int) -> None:
        meter.tag("video", i * 33, video)

    def tag_audio(i: int) -> None:
        meter.tag("audio", i * 23, audio)

    def parse(i: int) -> None:
        flv.parse_video(video, nal_length_size=4)

    for fn in (tag_video, parse):  # warm up
        per_call_ns(fn, n // 10)
    rounds = [(per_call_ns(tag_video, n), per_call_ns(tag_audio, n), per_call_ns(parse, n))
              for _ in range(3)]
    video_ns, audio_ns, parse_ns = (min(r[k] for r in rounds) for k in range(3))
    started = time.perf_counter_ns()
    for _ in range(1000):
        meter.snapshot("s", now_s=1.0, ladder=None)
    snapshot_us = (time.perf_counter_ns() - started) / 1000 / 1000
    per_s_us = (30 * video_ns + 43 * audio_ns) / 1000
    print(f"meter.tag video {video_ns:.0f} ns, audio {audio_ns:.0f} ns; "
          f"flv.parse_video (peer) {parse_ns:.0f} ns; ratio meter/parse "
          f"{video_ns / parse_ns:.2f}")
    print(f"per second of a 30 fps stream with 43 AAC frames: {per_s_us:.1f} us "
          f"({per_s_us / 1e4:.4f} % of a core); snapshot {snapshot_us:.1f} us each")
    print("(best of 3 rounds; this machine is shared with other jobs)")


if __name__ == "__main__":
    main()
