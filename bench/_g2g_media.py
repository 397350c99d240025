"""Pure parts of the glass-to-glass bench: the barcode, FLV tags, per-frame stage arithmetic.

Nothing here does I/O or reads a clock, so it is tested in tests/bench/.

- Barcode: the publisher paints the capture wall-clock time into the top-left corner of
  every frame; web/player_probe.html reads it back from each displayed frame. A 25 x 2
  grid of 48 px cells at 1280x720 (24 px at 360p): cell 0 white, cell 1 black (the
  threshold), then 40 bits of epoch ms mod 2^40 and an 8-bit checksum (sum of those five
  bytes mod 256), most significant bit first, row by row. `paint_barcode` writes it into
  a yuv420p frame; `read_barcode` is the page's decoder in Python (for the tests).
- `FlvReader`: splits an FLV byte stream (ffmpeg's output) into tags, incrementally.
- `stages`: per displayed frame, the time spent in each stage from capture to display.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WIDTH, HEIGHT, FPS = 1280, 720, 30
COLS, ROWS, CELL = 25, 2, 48  # cells, at WIDTH x HEIGHT
WHITE, BLACK = 235, 16  # video-range luma
TIME_BITS = 40
WRAP_MS = 1 << TIME_BITS

# -- barcode ----------------------------------------------------------------------------------


def barcode_bits(epoch_ms: int) -> list[int]:
    value = epoch_ms % WRAP_MS
    data = value.to_bytes(5, "big")
    check = sum(data) % 256
    return [1, 0] + [(byte >> (7 - j)) & 1 for byte in (*data, check) for j in range(8)]


def paint_barcode(frame: npt.NDArray[np.uint8], epoch_ms: int) -> None:
    """Paint `epoch_ms` into a yuv420p frame (WIDTH x HEIGHT, flat array) in place."""
    y = frame[: WIDTH * HEIGHT].reshape(HEIGHT, WIDTH)
    chroma = WIDTH * HEIGHT // 4
    u = frame[WIDTH * HEIGHT : WIDTH * HEIGHT + chroma].reshape(HEIGHT // 2, WIDTH // 2)
    v = frame[WIDTH * HEIGHT + chroma :].reshape(HEIGHT // 2, WIDTH // 2)
    for k, bit in enumerate(barcode_bits(epoch_ms)):
        col, row = k % COLS, k // COLS
        y[row * CELL : (row + 1) * CELL, col * CELL : (col + 1) * CELL] = WHITE if bit else BLACK
    h, w = ROWS * CELL // 2, COLS * CELL // 2
    u[:h, :w] = 128
    v[:h, :w] = 128


def read_barcode(luma: npt.NDArray[np.uint8]) -> int | None:
    """The page's decoder on a luma plane of any size (the picture scaled as a whole):
    mean of the middle half of each cell, threshold halfway between the reference cells.
    Returns epoch ms mod 2^40, or None when the checksum fails."""
    height, width = luma.shape
    cw, ch = width * CELL / WIDTH, height * CELL / HEIGHT

    def cell(k: int) -> float:
        col, row = k % COLS, k // COLS
        x0, y0 = int((col + 0.25) * cw), int((row + 0.25) * ch)
        x1, y1 = int((col + 0.75) * cw), int((row + 0.75) * ch)
        return float(luma[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean())

    white, black = cell(0), cell(1)
    if white - black < 60:
        return None
    bits = [1 if cell(k) > (white + black) / 2 else 0 for k in range(2, COLS * ROWS)]
    data = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, 48, 8)]
    if sum(data[:5]) % 256 != data[5]:
        return None
    return int.from_bytes(bytes(data[:5]), "big")


# -- FLV --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlvTag:
    kind: int  # 8 audio, 9 video, 18 script
    timestamp_ms: int
    body: bytes

    @property
    def is_video_frame(self) -> bool:
        """An AVC NALU tag (not a sequence header)."""
        return self.kind == 9 and len(self.body) >= 5 and self.body[1] == 1

    @property
    def pts_ms(self) -> int:
        """Timestamp plus the AVC composition time (signed 24 bits)."""
        cts = int.from_bytes(self.body[2:5], "big")
        if cts & 0x800000:
            cts -= 1 << 24
        return self.timestamp_ms + cts


class FlvReader:
    """Incremental FLV demuxer: feed bytes, take complete tags."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._header_done = False

    def feed(self, data: bytes) -> list[FlvTag]:
        self._buf += data
        tags: list[FlvTag] = []
        if not self._header_done:
            if len(self._buf) < 13:
                return tags
            if self._buf[:3] != b"FLV":
                raise ValueError("not an FLV stream")
            offset = struct.unpack_from(">I", self._buf, 5)[0]
            del self._buf[: offset + 4]
            self._header_done = True
        while len(self._buf) >= 11:
            kind = self._buf[0] & 0x1F
            size = int.from_bytes(self._buf[1:4], "big")
            if len(self._buf) < 11 + size + 4:
                break
            ts = int.from_bytes(self._buf[4:7], "big") | self._buf[7] << 24
            tags.append(FlvTag(kind, ts, bytes(self._buf[11 : 11 + size])))
            del self._buf[: 11 + size + 4]
        return tags


# -- per-frame stages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """What the publisher knows of one frame (monotonic seconds)."""

    index: int
    captured_s: float
    published_s: float | None = None
    dts_ms: int | None = None
    pts_ms: int | None = None


def stages(
    shown: Iterable[tuple[Frame, str, float]],
    *,
    pipeline_in: Mapping[int, float],
    ladder_out: Mapping[tuple[str, int], float],
    part_closed: Mapping[tuple[str, int], float],
) -> dict[str, list[float]]:
    """Per displayed frame (frame, rung played, displayed at, monotonic s): seconds spent
    capture -> publish (publisher's encoder), publish -> ingest (socket, RTMP, channel),
    ingest -> ladder output (decode, reorder, scale, encode), ladder -> part closed (the
    part filling up), part closed -> displayed (player: fetch, buffer, hold-back, decode).
    Only frames traced through every stage count, so the stages add up per frame."""
    names = ("capture -> publish (encoder)", "publish -> ingest",
             "ingest -> ladder output", "ladder output -> part closed",
             "part available -> displayed", "glass to glass")
    out: dict[str, list[float]] = {n: [] for n in names}
    for frame, rung, displayed_s in shown:
        if frame.published_s is None or frame.dts_ms is None or frame.pts_ms is None:
            continue
        ingest = pipeline_in.get(frame.dts_ms)
        ladder = ladder_out.get((rung, frame.pts_ms))
        closed = part_closed.get((rung, frame.pts_ms))
        if ingest is None or ladder is None or closed is None:
            continue
        marks = [frame.captured_s, frame.published_s, ingest, ladder, closed, displayed_s]
        for name, a, b in zip(names, marks, marks[1:], strict=False):
            out[name].append(b - a)
        out["glass to glass"].append(displayed_s - frame.captured_s)
    return out


def parts_closed(events: Iterable[tuple[str, int, float, int]]) -> dict[tuple[str, int], float]:
    """(rung, pts ms) -> when the part holding that frame closed, from the packager tap's
    (rung, pts ms, time, parts closed by pushing this frame) in push order: a frame that
    closes parts opens the next one, so the frames before it are the closed part's."""
    out: dict[tuple[str, int], float] = {}
    open_frames: dict[str, list[int]] = {}
    for rung, pts_ms, at_s, closed in events:
        pending = open_frames.setdefault(rung, [])
        if closed:
            out.update(((rung, ms), at_s) for ms in pending)
            pending.clear()
        pending.append(pts_ms)
    return out


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
