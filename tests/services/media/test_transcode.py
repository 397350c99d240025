"""The PyAV transcode ladder against real ffmpeg-made input, decoded back with PyAV.

Clips are small (320x180, 1-2 s) because resolution does not change what is checked:
frame counts, keyframe alignment, timestamps, encoder delay and error handling.
"""

from __future__ import annotations

import itertools
import math
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
import trio

from streamscale.protocols.hls import (
    H264Config,
    PackagerConfig,
    Presentation,
    Sample,
    Segment,
    VideoTrack,
)
from streamscale.services.media.transcode import (
    DEFAULT_LADDER,
    REFERENCE_LADDER,
    SOURCE_RUNG,
    AdmissionControl,
    EncodedFrame,
    Ladder,
    RungSpec,
    TranscodeError,
    ladder_cost,
    parse_ladder,
)
from streamscale.services.media.transcode_overload import OverloadGovernor, OverloadPolicy

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
RUNGS = [
    SOURCE_RUNG,
    RungSpec(name="180p", height=180, video_bitrate_kbps=400),
    RungSpec(name="120p", height=120, video_bitrate_kbps=200),
    RungSpec(name="90p", height=90, video_bitrate_kbps=100),
]
SIZES = {"source": (320, 180), "180p": (320, 180), "120p": (214, 120), "90p": (160, 90)}


@dataclass(frozen=True)
class AU:
    data: bytes
    dts_ms: int
    pts_ms: int
    keyframe: bool


@dataclass(frozen=True)
class Clip:
    avcc_record: bytes
    units: list[AU]


def make_clip(path: Path, *, seconds: float, bframes: int, gop: int) -> Clip:
    """A lavfi test clip encoded by the ffmpeg CLI into FLV, read back as AVCC units."""
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
         "testsrc2=size=320x180:rate=30", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "veryfast", "-g", str(gop), "-bf", str(bframes), "-pix_fmt", "yuv420p",
         str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        record = bytes(stream.codec_context.extradata or b"")
        units = [
            AU(bytes(p), int(p.dts or 0), int(p.pts or 0), bool(p.is_keyframe))
            for p in container.demux(stream)
            if p.size
        ]
    return Clip(record, units)


@pytest.fixture(scope="module")
def bframe_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return make_clip(tmp_path_factory.mktemp("clip") / "b.flv", seconds=2, bframes=2, gop=15)


@pytest.fixture(scope="module")
def plain_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return make_clip(tmp_path_factory.mktemp("clip") / "p.flv", seconds=1, bframes=0, gop=15)


def run_ladder(ladder: Ladder, clip: Clip) -> list[list[EncodedFrame]]:
    """Per push (plus one final entry for flush), the frames that came out."""
    ladder.configure(clip.avcc_record)
    out = [
        ladder.push(u.data, dts_ms=u.dts_ms, pts_ms=u.pts_ms, keyframe=u.keyframe,
                    wallclock_s=1e9 + i / 30)
        for i, u in enumerate(clip.units)
    ]  # fmt: skip
    out.append(ladder.flush())
    return out


def by_rung(batches: Sequence[list[EncodedFrame]]) -> dict[str, list[EncodedFrame]]:
    rungs: dict[str, list[EncodedFrame]] = {}
    for batch in batches:
        for frame in batch:
            rungs.setdefault(frame.rung, []).append(frame)
    return rungs


def decode(extradata: bytes, frames: list[EncodedFrame]) -> list[Any]:
    """Decode a rung's output the way a player would: avcC from its SPS/PPS, AVCC units."""
    decoder: Any = av.CodecContext.create("h264", "r")
    decoder.extradata = H264Config.from_extradata(extradata).avcc_record()
    pictures: list[Any] = []
    for f in frames:
        packet = av.Packet(f.data)
        packet.pts, packet.dts = f.pts_90k, f.dts_90k
        pictures.extend(decoder.decode(packet))
    pictures.extend(decoder.decode(None))
    return pictures


@pytest.fixture(scope="module")
def bframe_run(bframe_clip: Clip) -> tuple[Ladder, list[list[EncodedFrame]]]:
    ladder = Ladder(RUNGS)
    return ladder, run_ladder(ladder, bframe_clip)


def test_every_rung_decodes_at_its_size_with_every_frame(
    bframe_clip: Clip, bframe_run: tuple[Ladder, list[list[EncodedFrame]]]
) -> None:
    ladder, batches = bframe_run
    rungs = by_rung(batches)
    assert list(rungs) == ladder.rungs == ["source", "180p", "120p", "90p"]
    for name, frames in rungs.items():
        assert len(frames) == len(bframe_clip.units) == 60, name
        track = VideoTrack.from_extradata(ladder.rung_extradata(name))
        assert (track.config.width, track.config.height) == SIZES[name] == ladder.rung_size(name)
        pictures = decode(ladder.rung_extradata(name), frames)
        assert len(pictures) == 60, name
        assert {(p.width, p.height) for p in pictures} == {SIZES[name]}
    assert ladder.stats.frames_out == {name: 60 for name in rungs}
    assert ladder.stats.decode_errors == 0
    assert ladder.stats.encode_ms_per_frame("180p") > 0


def test_keyframes_and_timestamps_match_the_source_in_every_rung(
    bframe_clip: Clip, bframe_run: tuple[Ladder, list[list[EncodedFrame]]]
) -> None:
    _, batches = bframe_run
    rungs = by_rung(batches)
    source_keys = [u.pts_ms * 90 for u in bframe_clip.units if u.keyframe]
    assert len(source_keys) == 4
    source_pts = sorted(u.pts_ms * 90 for u in bframe_clip.units)
    source_dts = [u.dts_ms * 90 for u in bframe_clip.units]
    assert any(u.pts_ms != u.dts_ms for u in bframe_clip.units)  # really B-frame input
    key_dts = {f.pts_90k: f.dts_90k for f in rungs["source"] if f.keyframe}
    for name, frames in rungs.items():
        assert [f.pts_90k for f in frames if f.keyframe] == source_keys, name
        assert sorted(f.pts_90k for f in frames) == source_pts, name
        dts = [f.dts_90k for f in frames]
        assert dts == sorted(set(dts)), name  # strictly increasing
        assert all(f.dts_90k <= f.pts_90k for f in frames), name
        assert {f.pts_90k: f.dts_90k for f in frames if f.keyframe} == key_dts, name
        if name != "source":
            assert dts == source_dts  # the source decode timeline, shared by every rung
        assert {f.wallclock_s for f in frames} == {1e9 + i / 30 for i in range(60)}
    # The encoded keyframes are real IDRs (NAL type 5), so a segment can start there.
    for frame in rungs["120p"]:
        assert (b"\x65" in _nal_types(frame.data)) == frame.keyframe


def _nal_types(data: bytes) -> bytes:
    types, pos = bytearray(), 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        types.append(data[pos + 4] & 0x1F | 0x60)
        pos += 4 + length
    return bytes(types)


def test_packager_cuts_every_rung_at_the_same_instants(
    bframe_run: tuple[Ladder, list[list[EncodedFrame]]],
) -> None:
    ladder, batches = bframe_run
    pres = Presentation(PackagerConfig(segment_target_s=0.5, part_target_s=0.25))
    renditions = {
        name: pres.add_rendition(name, video=VideoTrack.from_extradata(ladder.rung_extradata(name)))
        for name in ladder.rungs
    }
    cuts: dict[str, list[tuple[float, float]]] = {name: [] for name in renditions}
    for frame in (f for batch in batches for f in batch):
        sample = Sample(frame.data, frame.dts_90k, frame.pts_90k, frame.keyframe, frame.wallclock_s)
        for event in renditions[frame.rung].push_video(sample):
            if isinstance(event, Segment):
                cuts[frame.rung].append((event.start_s, round(event.duration_s, 3)))
    assert len(cuts["source"]) == 3
    assert all(c == cuts["source"] for c in cuts.values())


def test_encoder_holds_no_frames_with_low_latency_settings(plain_clip: Clip) -> None:
    batches = run_ladder(Ladder(RUNGS), plain_clip)
    # No B-frames in: every push returns its own frame in every rung; flush has nothing.
    for i, batch in enumerate(batches[:-1]):
        assert sorted(f.rung for f in batch) == sorted(SIZES), i
        assert {f.pts_90k for f in batch} == {plain_clip.units[i].pts_ms * 90}
    assert batches[-1] == []


def test_bframe_input_waits_only_for_the_decoders_reordering(
    bframe_run: tuple[Ladder, list[list[EncodedFrame]]],
) -> None:
    _, batches = bframe_run
    first: dict[str, int] = {}
    for i, batch in enumerate(batches):
        for f in batch:
            first.setdefault(f.rung, i)
    assert first["source"] == 0
    assert {first[n] for n in ("180p", "120p", "90p")} == {2}  # -bf 2: two frames reordered


def test_frame_rate_cap_keeps_keyframes_aligned(bframe_clip: Clip) -> None:
    capped = RungSpec(name="90p15", height=90, video_bitrate_kbps=100, max_fps=15)
    rungs = by_rung(run_ladder(Ladder([SOURCE_RUNG, capped]), bframe_clip))
    frames = rungs["90p15"]
    assert len(frames) == 32  # every other frame; each 15-frame GOP restarts the cadence
    gaps = [b.pts_90k - a.pts_90k for a, b in itertools.pairwise(frames)]
    assert max(gaps) <= 6030  # never more than the capped frame interval (plus ms rounding)
    keys = [f.pts_90k for f in rungs["source"] if f.keyframe]
    assert [f.pts_90k for f in frames if f.keyframe] == keys
    assert len(decode(_extradata_of(capped, bframe_clip), frames)) == 32


def _extradata_of(spec: RungSpec, clip: Clip) -> bytes:
    ladder = Ladder([spec])
    ladder.configure(clip.avcc_record)
    return ladder.rung_extradata(spec.name)


def test_rungs_taller_than_the_source_are_skipped(plain_clip: Clip) -> None:
    ladder = Ladder(DEFAULT_LADDER)
    ladder.configure(plain_clip.avcc_record)
    assert ladder.rungs == ["source"]  # 720p/480p/360p would all upscale a 180p source
    out = ladder.push(b"\x00\x00\x00\x01\x09", dts_ms=0, pts_ms=0, keyframe=True, wallclock_s=0)
    assert [f.rung for f in out] == ["source"]


def test_passthrough_forwards_access_units_unchanged(
    bframe_clip: Clip, bframe_run: tuple[Ladder, list[list[EncodedFrame]]]
) -> None:
    ladder, batches = bframe_run
    source = by_rung(batches)["source"]
    assert [f.data for f in source] == [u.data for u in bframe_clip.units]
    assert ladder.rung_extradata("source") == bframe_clip.avcc_record


# -- bad input ---------------------------------------------------------------------------


def test_bad_sequence_header_and_misuse_raise_transcode_error(plain_clip: Clip) -> None:
    ladder = Ladder(RUNGS)
    with pytest.raises(TranscodeError):
        ladder.push(plain_clip.units[0].data, dts_ms=0, pts_ms=0, keyframe=True, wallclock_s=0)
    for record in (b"", b"\x01\x64", b"garbage" * 10, plain_clip.avcc_record[:12]):
        with pytest.raises(TranscodeError):
            ladder.configure(record)
    ladder.configure(plain_clip.avcc_record)
    ladder.flush()
    with pytest.raises(TranscodeError):
        ladder.push(plain_clip.units[0].data, dts_ms=0, pts_ms=0, keyframe=True, wallclock_s=0)


@pytest.mark.parametrize("unit", [b"", b"\x00\x00", b"\x00\x00\x00\x09abc", b"\x00\x00\x00\x00"])
def test_broken_nal_framing_raises_transcode_error(plain_clip: Clip, unit: bytes) -> None:
    ladder = Ladder(RUNGS)
    ladder.configure(plain_clip.avcc_record)
    with pytest.raises(TranscodeError, match="access unit"):
        ladder.push(unit, dts_ms=0, pts_ms=0, keyframe=True, wallclock_s=0)


def test_corrupt_units_are_counted_then_a_fresh_ladder_resumes(plain_clip: Clip) -> None:
    rnd = random.Random(4)
    ladder = Ladder(RUNGS, max_consecutive_errors=3)
    ladder.configure(plain_clip.avcc_record)
    units = plain_clip.units
    with pytest.raises(TranscodeError, match="decode errors in a row"):
        for i, u in enumerate(units):
            data = u.data
            if i % 5 == 2 or i >= 20:  # sporadic corruption, then a broken publisher
                data = data[:4] + rnd.randbytes(len(data) - 4)
            ladder.push(data, dts_ms=u.dts_ms, pts_ms=u.pts_ms, keyframe=u.keyframe,
                        wallclock_s=0)  # fmt: skip
    assert ladder.stats.decode_errors >= 4
    assert 0 < ladder.stats.frames_out["180p"] < 20
    # What the service does next: a fresh ladder from the next keyframe.
    fresh = Ladder(RUNGS)
    fresh.configure(plain_clip.avcc_record)
    restart = next(i for i, u in enumerate(units) if u.keyframe and i > 0)
    out = [
        f
        for u in units[restart:]
        for f in fresh.push(
            u.data, dts_ms=u.dts_ms, pts_ms=u.pts_ms, keyframe=u.keyframe, wallclock_s=0
        )
    ]
    assert len([f for f in out if f.rung == "90p"]) == len(units) - restart


async def test_runs_in_a_worker_thread_from_trio(plain_clip: Clip) -> None:
    ladder, limiter = Ladder(RUNGS), trio.CapacityLimiter(1)
    await trio.to_thread.run_sync(ladder.configure, plain_clip.avcc_record, limiter=limiter)
    u = plain_clip.units[0]

    def push() -> list[EncodedFrame]:
        return ladder.push(u.data, dts_ms=u.dts_ms, pts_ms=u.pts_ms, keyframe=True, wallclock_s=0)

    out = await trio.to_thread.run_sync(push, limiter=limiter)
    assert len(out) == 4


# -- overload ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """2 s, keyframes every 0.5 s (frames 0, 15, 30, 45), no B-frames."""
    return make_clip(tmp_path_factory.mktemp("clip") / "g.flv", seconds=2, bframes=0, gop=15)


def push_units(ladder: Ladder, units: Sequence[AU]) -> list[EncodedFrame]:
    out: list[EncodedFrame] = []
    for u in units:
        out += ladder.push(u.data, dts_ms=u.dts_ms, pts_ms=u.pts_ms, keyframe=u.keyframe,
                           wallclock_s=0)  # fmt: skip
    return out


def test_a_shed_rung_carries_the_next_rung_down_from_the_next_keyframe(gop_clip: Clip) -> None:
    units = gop_clip.units
    assert [i for i, u in enumerate(units) if u.keyframe] == [0, 15, 30, 45]
    ladder = Ladder(RUNGS)
    ladder.configure(gop_clip.avcc_record)
    cost = ladder.cost
    extradata = {name: ladder.rung_extradata(name) for name in ("180p", "120p", "90p")}
    frames = push_units(ladder, units[:1])
    assert ladder.shed() == "180p"
    assert ladder.cost < cost and ladder.shed_rungs == ["180p"]
    frames += push_units(ladder, units[1:16])  # the switch happens on frame 15
    assert ladder.shed() == "120p"
    frames += push_units(ladder, units[16:31])
    assert ladder.shed() == "90p"
    frames += push_units(ladder, units[31:])
    assert ladder.shed() is None  # only the (free) passthrough is left
    assert ladder.cost == 0 and ladder.shed_rungs == ["180p", "120p", "90p"]
    assert ladder.rungs == ["source", "180p", "120p", "90p"]  # every rendition goes on
    rungs = by_rung([frames])
    tracks = {name: [(f.source, f.keyframe) for f in got] for name, got in rungs.items()}
    for name in ("source", "180p", "120p", "90p"):
        assert len(rungs[name]) == len(units), name  # no frame lost, none doubled
        dts = [f.dts_90k for f in rungs[name]]
        assert dts == sorted(set(dts)), name
    switches = {  # (frame index, new track) for every change of track
        name: [(i, t[0]) for i, t in enumerate(seq) if i and t[0] != seq[i - 1][0]]
        for name, seq in tracks.items()
    }
    assert switches == {
        "source": [],
        "180p": [(15, "120p"), (30, "90p"), (45, "source")],
        "120p": [(30, "90p"), (45, "source")],
        "90p": [(45, "source")],
    }
    for name, changes in switches.items():  # every switch lands on a keyframe
        assert all(tracks[name][i][1] for i, _ in changes), name
    # what 180p's players decode after frame 15: 120p's pictures, with 120p's SPS/PPS
    pictures = decode(extradata["120p"], rungs["180p"][15:30])
    assert len(pictures) == 15 and {(p.width, p.height) for p in pictures} == {SIZES["120p"]}
    assert ladder.stats.dropped_rungs == ["180p", "120p", "90p"]


def test_a_restored_rung_comes_back_on_its_own_encoder(gop_clip: Clip) -> None:
    units = gop_clip.units
    ladder = Ladder(RUNGS)
    ladder.configure(gop_clip.avcc_record)
    frames = push_units(ladder, units[:1])
    assert ladder.restore() is None  # nothing shed
    assert ladder.shed() == "180p"
    frames += push_units(ladder, units[1:20])
    assert ladder.rung_size("180p") == SIZES["120p"]
    assert ladder.restore() == "180p"
    assert ladder.shed_rungs == []
    frames += push_units(ladder, units[20:])
    assert ladder.rung_size("180p") == SIZES["180p"]
    rendition = by_rung([frames])["180p"]
    assert [f.source for f in rendition] == ["180p"] * 15 + ["120p"] * 15 + ["180p"] * 30
    assert rendition[30].keyframe
    pictures = decode(ladder.rung_extradata("180p"), rendition[30:])
    assert len(pictures) == 30 and {(p.width, p.height) for p in pictures} == {SIZES["180p"]}


def test_a_shed_undone_before_the_keyframe_changes_nothing(gop_clip: Clip) -> None:
    ladder = Ladder(RUNGS)
    ladder.configure(gop_clip.avcc_record)
    frames = push_units(ladder, gop_clip.units[:5])
    assert ladder.shed() == "180p"
    assert ladder.restore() == "180p"
    frames += push_units(ladder, gop_clip.units[5:])
    assert all(f.source == f.rung for f in frames)


def test_a_ladder_restarted_with_shed_rungs_keeps_them_shed(gop_clip: Clip) -> None:
    ladder = Ladder(RUNGS, shed=["180p"])
    ladder.configure(gop_clip.avcc_record)
    assert ladder.rungs == ["source", "180p", "120p", "90p"]
    assert ladder.track_of("180p") == "120p" and ladder.rung_size("180p") == SIZES["120p"]
    frames = by_rung([push_units(ladder, gop_clip.units[:3])])
    assert [f.source for f in frames["180p"]] == ["120p"] * 3


def test_falling_behind_is_measured_and_sheds_one_rung_per_cooldown(plain_clip: Clip) -> None:
    ticks = itertools.count()
    policy = OverloadPolicy(warmup_s=0, shed_sustain_s=0.2, cooldown_s=5.0)
    ladder = Ladder(RUNGS, clock=lambda: next(ticks) * 0.02, overload=policy)
    ladder.configure(plain_clip.avcc_record)
    decisions = []
    for u in plain_clip.units:  # every clock read moves 20 ms: >= 60 ms per 33 ms frame
        ladder.push(u.data, dts_ms=u.dts_ms, pts_ms=u.pts_ms, keyframe=u.keyframe, wallclock_s=0)
        decisions.append(ladder.rebalance(can_afford=lambda _extra: True))
    assert ladder.load > 1.5 and ladder.behind_s > 0.5
    assert [d for d in decisions if d] == [("shed", "180p")]  # once: then cooling down


def test_keeping_up_is_not_lagging(plain_clip: Clip) -> None:
    ladder = Ladder(RUNGS, overload=OverloadPolicy(warmup_s=0, shed_sustain_s=0))
    run_ladder(ladder, plain_clip)  # 320x180 encodes far faster than 30 fps
    assert ladder.behind_s < 0.1
    assert ladder.rebalance(can_afford=lambda _extra: True) is None


def test_a_restore_waits_for_admission_control(gop_clip: Clip) -> None:
    policy = OverloadPolicy(warmup_s=0, restore_after_s=0, cooldown_s=0)
    ladder = Ladder(RUNGS, shed=["180p"], overload=policy)
    ladder.configure(gop_clip.avcc_record)
    push_units(ladder, gop_clip.units[:2])
    asked: list[float] = []
    assert ladder.rebalance(can_afford=lambda extra: bool(asked.append(extra))) is None
    assert asked and asked[0] > 0 and ladder.shed_rungs == ["180p"]
    assert ladder.rebalance(can_afford=lambda _extra: True) == ("restore", "180p")


# -- the overload policy, on readings ------------------------------------------------------


def run_policy(
    policy: OverloadPolicy, readings: Sequence[tuple[float, float, float | None]], fps: int = 30
) -> list[tuple[float, str]]:
    """(behind_s, load, restored_load) per frame; the decisions with their media time."""
    governor = OverloadGovernor(policy)
    out = []
    for i, (behind, load, restored) in enumerate(readings):
        t = i / fps
        decision = governor.observe(t, behind_s=behind, load=load, restored_load=restored)
        if decision:
            out.append((round(t, 2), decision))
    return out


def test_a_start_up_burst_sheds_nothing() -> None:
    """The burst seen from outside: load 2.39, 1.20, 0.77 within seconds of the start, the
    backlog above a second and draining. The old policy shed three rungs; this one none."""
    readings = []
    behind = 0.0
    for i in range(30 * 20):
        t = i / 30
        load = 3.0 * math.exp(-t / 2.5)  # 2.4 at 0.6 s, 1.2 at 2.3 s, 0.77 at 3.4 s
        behind = max(0.0, behind + (load - 1) / 30)
        readings.append((behind, load, None))
    assert max(b for b, _, _ in readings) > 1.0  # it did lag past the threshold
    assert run_policy(OverloadPolicy(), readings) == []


def test_sustained_lag_sheds_one_rung_per_cooldown_and_headroom_restores() -> None:
    policy = OverloadPolicy()
    lagging = [(2.0, 1.3, None)] * (30 * 20)  # from t=0: lagging for 20 s
    decisions = run_policy(policy, lagging)
    # not in warm-up (5 s); the lag run started at 0 but counts only after warm-up ends:
    # first shed at 5 s, then a fresh 3 s run after each 5 s cooldown
    assert decisions == [(5.0, "shed"), (10.0, "shed"), (15.0, "shed")]
    calm = [(0.0, 0.4, 0.6)] * (30 * 40)
    restores = run_policy(policy, [(0.0, 0.4, 0.6)] * 30 * 6 + calm)
    assert restores[0] == (15.0, "restore")  # 15 s of headroom (warm-up already over)
    times = [t for t, _ in restores]  # each run of headroom starts after the last change
    assert len(times) == 3 and all(14.9 < b - a < 15.2 for a, b in itertools.pairwise(times))
    # a restore that would overload again (0.75 >= 0.7) never happens
    assert run_policy(policy, [(0.0, 0.5, 0.75)] * (30 * 60)) == []


def test_a_single_bad_reading_restarts_the_count() -> None:
    policy = OverloadPolicy(warmup_s=0, shed_sustain_s=3.0)
    readings = ([(2.0, 1.5, None)] * 80 + [(2.0, 0.9, None)]) * 4  # 2.7 s runs, broken
    assert run_policy(policy, readings) == []


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="restore_load"):
        OverloadPolicy(restore_load=1.2)
    with pytest.raises(ValueError, match="shed_behind_s"):
        OverloadPolicy(shed_behind_s=0)


# -- config and admission -------------------------------------------------------------------


def test_parse_ladder() -> None:
    rungs = parse_ladder([
        {"name": "source", "passthrough": True},
        {"name": "720p", "height": 720, "video_bitrate_kbps": 3000},
        {"name": "360p", "height": 360, "video_bitrate_kbps": 800, "max_fps": 30},
    ])  # fmt: skip
    assert rungs[0] == SOURCE_RUNG
    assert rungs[2].max_fps == 30.0
    assert rungs[1].size(1920, 1080) == (1280, 720)
    assert rungs[2].size(1000, 562) == (640, 360)  # even width, aspect kept
    assert RungSpec(name="x", height=240, video_bitrate_kbps=1).size(1080, 1920) == (136, 240)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least one rung"),
        ([{"name": "a", "height": 720, "video_bitrate_kbps": 1, "fps": 30}], "unknown key 'fps'"),
        ([{"name": "a", "video_bitrate_kbps": 1}], "missing key 'height'"),
        ([{"name": "a", "height": 720}], "missing key 'video_bitrate_kbps'"),
        ([{"height": 720, "video_bitrate_kbps": 1}], "key 'name'"),
        ([{"name": "a", "height": "720", "video_bitrate_kbps": 1}], "key 'height'"),
        ([{"name": "a", "height": 721, "video_bitrate_kbps": 1}], r"ladder\[0\].*even"),
        ([{"name": "a", "height": 720, "video_bitrate_kbps": 0}], "video_bitrate_kbps"),
        ([{"name": "a", "height": 720, "video_bitrate_kbps": 1, "max_fps": -1}], "max_fps"),
        ([{"name": "s", "passthrough": "yes"}], "key 'passthrough'"),
        ([{"name": "s", "passthrough": True, "height": 720}], "takes no height"),
        ([{"name": "s", "passthrough": True}, {"name": "t", "passthrough": True}], "at most one"),
        ([{"name": "s", "passthrough": True}, {"name": "s", "passthrough": True}], "duplicate"),
        (["720p"], "expected a table"),
    ],
)
def test_parse_ladder_names_the_bad_key(items: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ladder(items)


def test_ladder_cost_in_720p30_equivalents() -> None:
    assert ladder_cost(REFERENCE_LADDER) == pytest.approx(1.0)
    assert ladder_cost([SOURCE_RUNG]) == 0.0
    default = ladder_cost(DEFAULT_LADDER)
    assert 0.9 < default < 1.0  # no 160p rung
    assert ladder_cost(DEFAULT_LADDER, source_fps=60) == pytest.approx(2 * default)
    # A 1080p source decodes more but encodes the same rungs (no upscaling, no 1080p rung).
    assert default < ladder_cost(DEFAULT_LADDER, source_width=1920, source_height=1080) < 1.2
    # A 480p source gets only the 480p and 360p rungs.
    assert ladder_cost(DEFAULT_LADDER, source_width=854, source_height=480) < 0.5 * default


def test_admission_control_refuses_past_capacity_with_a_reason() -> None:
    admission = AdmissionControl(capacity=2.0)
    assert admission.admit("a", REFERENCE_LADDER)
    assert admission.admit("b", REFERENCE_LADDER).cost == pytest.approx(1.0)
    refused = admission.admit("c", REFERENCE_LADDER)
    assert not refused
    assert "capacity" in refused.reason and "stream c needs 1.00" in refused.reason
    assert admission.admit("d", [SOURCE_RUNG])  # passthrough costs nothing
    assert not admission.admit("a", [SOURCE_RUNG])  # one ladder per stream
    admission.update("b", 0.4)
    assert admission.used == pytest.approx(1.4)
    assert not admission.admit("c", REFERENCE_LADDER)
    admission.release("a")
    assert admission.admit("c", REFERENCE_LADDER)
    assert admission.available == pytest.approx(0.6)
    with pytest.raises(ValueError, match="capacity"):
        AdmissionControl(capacity=0)


# -- extra IDRs: players join near the live edge ---------------------------------------------


def test_encoded_rungs_get_extra_idrs_that_do_not_start_segments(gop_clip: Clip) -> None:
    ladder = Ladder(RUNGS, independent_every=5)
    frames = by_rung(run_ladder(ladder, gop_clip))
    source_keys = [i for i, u in enumerate(gop_clip.units) if u.keyframe]  # 0, 15, 30, 45
    for name in ("180p", "120p", "90p"):
        got = frames[name]
        assert [i for i, f in enumerate(got) if f.keyframe] == source_keys
        extra = [i for i, f in enumerate(got) if f.independent]
        assert extra == [i for i in range(len(got)) if i % 15 in (5, 10)], name
        # an extra IDR really is one: decoding can start there
        pictures = decode(ladder.rung_extradata(name), got[5:])
        assert len(pictures) == len(got) - 5
    assert not any(f.independent for f in frames["source"])  # the passthrough is untouched

