"""Every playlist the packager renders passes an independent parser in strict mode.

hls-parser (kuu/hls-parser, Node) with `strictMode: true` reads RFC 8216bis to the letter,
unlike our own writer and the lenient `m3u8` library; `validate_all` adds the part-tag
rule by time on top of the parser's reading by count. Playlists are rendered over a grid
of frame rates (including RTMP's millisecond timestamps), keyframe intervals, segment and
part targets, with and without audio, live, delta and ended, then checked in batches
through one validator process.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hls_media import encode_audio, encode_video
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamscale.protocols.hls import PackagerConfig, Presentation, Rendition, Sample
from streamscale.testing.hls_validate import check_all, validate, validate_all

_NAL = b"\x00\x00\x00\x02\x65\x88"  # well-formed AVCC; the muxer never decodes it
_AAC = b"\x21\x00\x49\x90\x02\x19\x00\x23\x80"


@dataclass(frozen=True)
class Plan:
    """One synthetic live stream: timing of the publisher and the packager's targets."""

    fps: float
    gop_s: float  # keyframe interval
    segment_s: float
    part_s: float
    audio: bool = True
    rtmp_ms: bool = False  # timestamps rounded to whole milliseconds, as RTMP carries them
    seconds: float = 9.0
    window: int = 12
    switches: tuple[float, ...] = ()  # switch the video track at the first keyframe after

    def __str__(self) -> str:
        return (
            f"{self.fps:g} fps, keyframe every {self.gop_s:g} s, segments {self.segment_s:g} s, "
            f"parts {self.part_s:.3f} s, audio={self.audio}, ms timestamps={self.rtmp_ms}"
            + (f", track switches at {self.switches} s" if self.switches else "")
        )


def render(plan: Plan, *, every: int = 1) -> list[tuple[str, bytes]]:
    """Feed `plan` into a video(+audio) rung and an audio-only rung; return the playlists
    a player would see: live after every `every`-th part, delta updates, then ended."""
    pres = Presentation(
        PackagerConfig(
            segment_target_s=plan.segment_s,
            part_target_s=plan.part_s,
            window_segments=plan.window,
            skip_until_s=0.001,  # raised to six target durations by the rendition
        )
    )
    audio_track = encode_audio().audio
    video = pres.add_rendition(
        "v",
        video=encode_video().video,
        audio=audio_track if plan.audio else None,
        bandwidth_bps=800_000,
        frame_rate=plan.fps,
    )
    sound = pres.add_rendition("a", audio=audio_track, bandwidth_bps=128_000)
    out: list[tuple[str, bytes]] = []
    parts_seen = 0

    def snapshot(rendition: Rendition, events: list[object]) -> None:
        nonlocal parts_seen
        if not events:
            return
        parts_seen += 1
        if parts_seen % every == 0:
            label = f"{rendition.name} after part {parts_seen} ({plan})"
            out.append((label, rendition.media_playlist()))
            out.append((f"delta {label}", rendition.media_playlist(skip=True)))

    gop = max(1, round(plan.gop_s * plan.fps))
    tracks = [encode_video().video, encode_video(width=160, height=120).video]
    switches = list(plan.switches)
    audio_dts = 0
    for i in range(round(plan.seconds * plan.fps)):
        t = i / plan.fps
        if switches and t >= switches[0] and i % gop == 0:
            switches.pop(0)
            tracks.reverse()
            video.switch_video(tracks[0])  # as a shed rung does: a break, a new init
        dts = round(t * 1000) * 90 if plan.rtmp_ms else round(t * 90_000)
        snapshot(video, list(video.push_video(Sample(_NAL, dts, dts, i % gop == 0, 1e9 + t))))
        while audio_dts * 90_000 < dts * 48_000:
            sample = Sample(_AAC, audio_dts, wallclock_s=1e9 + audio_dts / 48_000)
            if plan.audio:
                video.push_audio(sample)
            snapshot(sound, list(sound.push_audio(sample)))
            audio_dts += 1024
    pres.end()
    for r in (video, sound):
        out.append((f"{r.name} ended ({plan})", r.media_playlist()))
        out.append((f"{r.name} ended, delta ({plan})", r.media_playlist(skip="v2")))
        out.append((f"{r.name} classic ({plan})", r.media_playlist(low_latency=False)))
        out.append((f"{r.name} vod ({plan})", r.vod_playlist()))
    out.append((f"master ({plan})", pres.master_playlist()))
    out.append((f"classic master ({plan})", pres.master_playlist(low_latency=False)))
    return out


# -- the validator itself is strict --------------------------------------------------------

_HEAD = (
    "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"
    "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES{skip},PART-HOLD-BACK=1.0,HOLD-BACK=3.0\n"
    "#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n"
)


_SKIP = "#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n"


def _segment(msn: int, *, parts: bool, durations: tuple[float, float] = (0.5, 0.5)) -> str:
    lines = ""
    if parts:
        lines = "".join(
            f'#EXT-X-PART:DURATION={d},URI="{msn}.{i}.m4s"\n' for i, d in enumerate(durations)
        )
    return f"{lines}#EXTINF:{sum(durations)},\n{msn}.m4s\n"


def _playlist(parts_on: int, *, skip: str = "", durations: tuple[float, float] = (0.5, 0.5)) -> str:
    """Six 1 s segments, the last `parts_on` with parts, an open segment with one part."""
    body = "".join(_segment(m, parts=m >= 6 - parts_on, durations=durations) for m in range(6))
    return (
        _HEAD.format(skip=skip)
        + body
        + '#EXT-X-PART:DURATION=0.5,URI="6.0.m4s"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="6.1.m4s"\n'
    )


def test_validator_accepts_a_correct_playlist() -> None:
    summary = validate(_playlist(2, skip=",CAN-SKIP-UNTIL=6.0"))
    assert summary["canSkipUntil"] == 6.0
    assert [len(s["parts"]) for s in summary["segments"]] == [0, 0, 0, 0, 2, 2, 1]


def test_validator_rejects_what_the_spec_forbids() -> None:
    bad = {
        "parts on four segments": _playlist(3),
        "CAN-SKIP-UNTIL under six target durations": _playlist(2, skip=",CAN-SKIP-UNTIL=5.9"),
        "a part longer than PART-TARGET": _playlist(2, durations=(0.4, 0.6)),
        "a part under 85% of PART-TARGET": _playlist(2, durations=(0.4, 0.5)),
        "HOLD-BACK under three target durations": _playlist(2).replace(
            "HOLD-BACK=3.0", "HOLD-BACK=2.5"
        ),
        "EXT-X-SKIP in a version 8 playlist": _playlist(2, skip=",CAN-SKIP-UNTIL=6.0")
        .replace("VERSION:9", "VERSION:8")
        .replace("#EXT-X-MEDIA-SEQUENCE:0\n", "#EXT-X-MEDIA-SEQUENCE:0\n" + _SKIP),
    }
    verdicts = check_all(bad.items())
    assert [v.label for v in verdicts if v.ok] == []
    assert "three target durations" in verdicts[0].error  # type: ignore[operator]
    assert "six times" in verdicts[1].error  # type: ignore[operator]
    for label, text in bad.items():
        with pytest.raises(AssertionError, match="strict HLS parser rejected") as info:
            validate(text, label=label)
        assert text in str(info.value)  # the failure shows the playlist


def test_validator_checks_the_part_rule_by_time_too() -> None:
    """hls-parser counts segments; the spec measures three target durations. An ended
    playlist whose last three 1.4 s segments (TARGETDURATION 1) list parts: the first of
    them starts 4.2 s from the end."""
    text = _playlist(3, durations=(0.7, 0.7)).replace("PART-TARGET=0.5", "PART-TARGET=0.7")
    text = text[: text.index("#EXT-X-PART:DURATION=0.5")] + "#EXT-X-ENDLIST\n"
    [verdict] = check_all([text])
    assert verdict.ok, verdict.error  # by count: three segments with parts is allowed
    with pytest.raises(AssertionError, match="more than 3 x TARGETDURATION"):
        validate(text)
    assert validate(text.replace('URI="3.1.m4s"', 'URI="3.1.m4s"').replace(
        '#EXT-X-PART:DURATION=0.7,URI="3.0.m4s"\n#EXT-X-PART:DURATION=0.7,URI="3.1.m4s"\n', ""
    ))["endlist"]


# -- what the packager renders passes ------------------------------------------------------

GRID = [
    Plan(fps, gop, seg, part, audio=audio, rtmp_ms=ms)
    for (fps, ms), gop, (seg, part), audio in itertools.product(
        [(30, False), (30, True), (29.97, False), (25, True), (60, True), (24, False)],
        [1.0, 2.0],
        [(2.0, 0.334), (1.0, 1 / 3), (1.0, 0.25), (2.0, 0.5), (0.5, 0.2)],
        [True, False],
    )
]


def test_grid_of_live_delta_and_ended_playlists_is_strictly_valid() -> None:
    playlists = [p for plan in GRID for p in render(plan, every=3)]
    summaries = validate_all(playlists)
    assert len(summaries) > 2000
    deltas = [
        s for (label, _), s in zip(playlists, summaries, strict=True) if label.startswith("delta")
    ]
    assert sum(1 for s in deltas if s["skipped"]) > 100  # deltas do skip


@pytest.mark.parametrize(
    "plan",
    [
        Plan(5, 2.0, 2.0, 1 / 3),  # frames longer than 15% of the part target
        Plan(10, 1.0, 1.0, 1 / 3, rtmp_ms=True),
        Plan(15, 3.0, 2.0, 0.5),
        Plan(30, 4.0, 2.0, 1 / 3, seconds=14),  # segments longer than the target
        Plan(30, 2.5, 2.0, 1 / 3, rtmp_ms=True, seconds=14),  # EXTINF 2.5 rounds up: TD 3
        Plan(30, 1.0, 1.0, 1.0),  # one part per segment
        Plan(30, 2.0, 2.0, 0.334, rtmp_ms=True, seconds=16, window=3, switches=(5.0, 11.0)),
        Plan(30, 1.0, 2.0, 1 / 3, seconds=12, window=3, switches=(2.5, 3.5, 8.0)),
        Plan(30, 1.0, 1.0, 1 / 3, seconds=14, window=10, switches=(2.0, 9.0)),  # + deltas
    ],
    ids=str,
)
def test_awkward_timings_are_strictly_valid(plan: Plan) -> None:
    playlists = render(plan)
    summaries = validate_all(playlists)
    if plan.switches:
        assert sum(b"#EXT-X-DISCONTINUITY\n" in text for _, text in playlists) > 10
        assert any(b"#EXT-X-DISCONTINUITY-SEQUENCE:" in text for _, text in playlists)
    live = [s for s in summaries if not s.get("master") and not s["endlist"]]
    assert live and all(any(seg["parts"] for seg in s["segments"]) for s in live)


def test_low_frame_rate_advertises_the_part_length_it_reaches() -> None:
    """At 5 fps a 1/3 s part target fits one 0.2 s frame: PART-TARGET says 0.2."""
    summaries = validate_all(render(Plan(5, 2.0, 2.0, 1 / 3, audio=False)))
    live = [s for s in summaries if not s.get("master") and s["partTarget"] is not None]
    assert {s["partTarget"] for s in live if not s["endlist"]} >= {0.2}


def test_parts_stay_within_three_target_durations_of_the_end() -> None:
    """Steady state, 2 s segments of 1/3 s parts: parts on the open segment and at most the
    two complete segments before it; the segments older than that list none."""
    playlists = render(Plan(30, 2.0, 2.0, 1 / 3, seconds=12), every=1)
    for (label, _), s in zip(playlists, validate_all(playlists), strict=True):
        if s.get("master") or s["partTarget"] is None or label.startswith("delta"):
            continue
        with_parts = [i for i, seg in enumerate(s["segments"]) if seg["parts"] or seg["hint"]]
        n = len(s["segments"])
        assert with_parts == list(range(n - len(with_parts), n)), label
        assert len(with_parts) <= 3, label
        if not s["endlist"] and n > 4:
            assert len(with_parts) >= 2, label  # the part window is not emptied


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fps=st.sampled_from([23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60]),
    gop_s=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    segment_s=st.sampled_from([0.5, 1.0, 1.5, 2.0, 4.0]),
    part_ratio=st.sampled_from([0.1, 1 / 6, 0.25, 1 / 3, 0.5, 1.0]),
    audio=st.booleans(),
    rtmp_ms=st.booleans(),
)
def test_any_regular_stream_renders_strictly_valid_playlists(
    fps: float,
    gop_s: float,
    segment_s: float,
    part_ratio: float,
    audio: bool,
    rtmp_ms: bool,
) -> None:
    part_s = max(0.2, segment_s * part_ratio)
    plan = Plan(fps, gop_s, segment_s, min(part_s, segment_s), audio, rtmp_ms, seconds=10)
    validate_all(render(plan, every=2))
