"""The pure parts of bench/glass_to_glass.py: the barcode survives x264 and scaling, FLV
tags come apart, and the per-frame stage arithmetic adds up. A fast smoke: no timing."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Appended, not prepended: bench/sim.py must not shadow the `sim` package.
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from _g2g_media import (
    HEIGHT,
    WIDTH,
    FlvReader,
    Frame,
    barcode_bits,
    paint_barcode,
    parts_closed,
    percentile,
    read_barcode,
    stages,
)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
STAMPS = [1_796_000_000_123, 1_796_000_000_156, (1 << 40) + 7, 0, 1_796_000_999_999]


def _frames() -> np.ndarray:
    rng = np.random.default_rng(7)  # busy background: x264 spends bits everywhere
    frames = rng.integers(0, 256, size=(len(STAMPS), WIDTH * HEIGHT * 3 // 2), dtype=np.uint8)
    for frame, stamp in zip(frames, STAMPS, strict=True):
        paint_barcode(frame, stamp)
    return frames


def test_barcode_reads_back_from_the_painted_frame() -> None:
    for frame, stamp in zip(_frames(), STAMPS, strict=True):
        assert read_barcode(frame[: WIDTH * HEIGHT].reshape(HEIGHT, WIDTH)) == stamp % (1 << 40)
    assert barcode_bits(0)[:2] == [1, 0] and len(barcode_bits(0)) == 50


def test_a_wrong_checksum_reads_as_nothing() -> None:
    frame = _frames()[0]
    luma = frame[: WIDTH * HEIGHT].reshape(HEIGHT, WIDTH)
    luma[48 * 0 + 10 : 48 * 0 + 38, 48 * 5 + 10 : 48 * 5 + 38] ^= 0xFF  # flip one data cell
    assert read_barcode(luma) is None


@pytest.mark.parametrize("height", [360, 160])
def test_barcode_survives_x264_at_small_rungs(tmp_path: Path, height: int) -> None:
    """Encode with x264 scaled to a ladder rung and decode with ffmpeg: every stamp reads."""
    width = WIDTH * height // HEIGHT // 2 * 2
    raw = tmp_path / "in.yuv"
    raw.write_bytes(_frames().tobytes())
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
         "-s", f"{WIDTH}x{HEIGHT}", "-r", "30", "-i", str(raw), "-vf", f"scale={width}:{height}",
         "-c:v", "libx264", "-preset", "veryfast", "-b:v", "300k", "-f", "h264", "-"],
        check=True, capture_output=True).stdout  # fmt: skip
    decoded = subprocess.run(
        [FFMPEG, "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo", "-pix_fmt", "gray",
         "-"], input=out, check=True, capture_output=True).stdout  # fmt: skip
    lumas = np.frombuffer(decoded, dtype=np.uint8).reshape(-1, height, width)
    assert [read_barcode(luma) for luma in lumas] == [s % (1 << 40) for s in STAMPS]


def _flv_tag(kind: int, ts: int, body: bytes) -> bytes:
    header = bytes((kind,)) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
    return header + bytes((ts >> 24,)) + b"\x00\x00\x00" + body + (11 + len(body)).to_bytes(
        4, "big")


def test_flv_reader_takes_tags_in_any_chunking() -> None:
    video = bytes((0x27, 1)) + (0xFFFFDF).to_bytes(3, "big") + b"nal"  # cts -33
    stream = (b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + _flv_tag(18, 0, b"meta")
              + _flv_tag(9, 0x01000010, video) + _flv_tag(8, 20, b"\xaf\x01aac"))
    for step in (1, 7, len(stream)):
        reader = FlvReader()
        tags = [t for i in range(0, len(stream), step) for t in reader.feed(stream[i : i + step])]
        assert [(t.kind, t.timestamp_ms) for t in tags] == [(18, 0), (9, 0x01000010), (8, 20)]
        assert tags[1].is_video_frame and tags[1].pts_ms == 0x01000010 - 33
        assert not tags[2].is_video_frame


def test_stages_add_up_per_frame() -> None:
    events = [("720p", 0, 10.0, 0), ("720p", 33, 10.1, 0), ("720p", 67, 10.3, 1),
              ("720p", 100, 10.4, 0), ("720p", 133, 10.6, 1)]
    closed = parts_closed(events)
    assert closed == {("720p", 0): 10.3, ("720p", 33): 10.3, ("720p", 67): 10.6,
                      ("720p", 100): 10.6}
    frame = Frame(1, captured_s=9.0, published_s=9.5, dts_ms=0, pts_ms=33)
    split = stages([(frame, "720p", 11.5), (Frame(2, 9.1), "720p", 11.6)],
                   pipeline_in={0: 9.6}, ladder_out={("720p", 33): 9.8}, part_closed=closed)
    assert [round(v[0], 3) for v in split.values()] == [0.5, 0.1, 0.2, 0.5, 1.2, 2.5]
    assert all(len(v) == 1 for v in split.values())  # the untraced frame is left out


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95
    assert percentile([3.0], 95) == 3.0 and math.isnan(percentile([], 50))
