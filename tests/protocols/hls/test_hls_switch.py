"""A rendition whose video track switches mid-stream (a rung shed, then restored).

The playlist goes on: the switch closes the open segment on the keyframe, the next one
starts with EXT-X-DISCONTINUITY and a new EXT-X-MAP (`init-1.mp4`), sequence numbers and
the timeline continue, and the media decodes at the new size with the new init segment.
"""

from __future__ import annotations

import io

import av
import pytest
from hls_media import Encoded, EncodedAudio, encode_audio, encode_video

from streamscale.protocols.hls import (
    Availability,
    HLSError,
    PackagerConfig,
    Presentation,
    Rendition,
    Sample,
    Segment,
    VideoTrack,
)
from streamscale.testing.hls_validate import validate_all

WALL = 1_700_000_000.0


def _sources() -> tuple[Encoded, Encoded, EncodedAudio]:
    """Two sizes of the same 6 s at 30 fps with keyframes every 0.5 s, aligned."""
    big = encode_video(180, width=320, height=240, gop=15)
    small = encode_video(180, width=160, height=120, gop=15)
    return big, small, encode_audio(6.0)


class Feeder:
    """Pushes chosen frames of either source into one rendition, audio interleaved."""

    def __init__(self, rendition: Rendition, audio: EncodedAudio) -> None:
        self.rendition, self.audio, self._next_audio = rendition, audio, 0

    def push(self, video: Encoded, frames: range) -> None:
        rate = self.audio.audio.timescale
        for i in frames:
            s = video.samples[i]
            t = s.dts / 90_000
            samples = self.audio.samples
            while self._next_audio < len(samples) and samples[self._next_audio].dts / rate <= t:
                self.rendition.push_audio(samples[self._next_audio])
                self._next_audio += 1
            self.rendition.push_video(Sample(s.data, s.dts, s.pts, s.keyframe, WALL + t))


@pytest.fixture
def switched() -> tuple[Presentation, Feeder, Encoded, Encoded]:
    big, small, audio = _sources()
    pres = Presentation(PackagerConfig(segment_target_s=1.0, part_target_s=0.25,
                                       window_segments=3, skip_until_s=6.0))
    x = pres.add_rendition("720p", video=big.video, audio=audio.audio, bandwidth_bps=900_000)
    pres.add_rendition("360p", video=small.video, audio=audio.audio, bandwidth_bps=300_000)
    feed = Feeder(x, audio)
    feed.push(big, range(0, 45))  # 1.5 s: segment 0 closed (1 s), segment 1 open
    x.switch_video(small.video)  # shed: from the next keyframe (frame 45) on, 360p's media
    pres.set_hidden("720p", True)
    feed.push(small, range(45, 75))
    x.switch_video(VideoTrack(big.video.config))  # restored at frame 75
    pres.set_hidden("720p", False)
    feed.push(big, range(75, 100))
    return pres, feed, big, small


def _decode_size(init: bytes, media: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(init + media), format="mp4") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_the_playlist_goes_on_across_switches(
    switched: tuple[Presentation, Feeder, Encoded, Encoded],
) -> None:
    x = switched[1].rendition
    text = x.media_playlist().decode()
    assert "#EXT-X-ENDLIST" not in text
    # segments 0 (big), 1 (big, cut early at the switch: 0.5 s), 2 (small), open 3 (big)
    assert "#EXTINF:0.50000,\n1.m4s\n" in text
    assert text.count("#EXT-X-DISCONTINUITY\n") == 2
    assert '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-1.mp4"\n' in text
    assert '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-2.mp4"\n' in text
    assert text.index("\n1.m4s\n") < text.index('URI="init-1.mp4"') < text.index(
        "\n2.m4s\n") < text.index('URI="init-2.mp4"') < text.index('URI="3.0.m4s"')
    assert x.position.last_msn == 2 and x.position.part_msn == 3  # sequence numbers go on
    classic = x.media_playlist(low_latency=False).decode()
    assert classic.count("#EXT-X-DISCONTINUITY\n") == 1  # the open segment is not listed
    validate_all([("ll", text), ("classic", classic), ("delta", x.media_playlist(skip=True))])


def test_each_segment_decodes_with_the_init_its_playlist_names(
    switched: tuple[Presentation, Feeder, Encoded, Encoded],
) -> None:
    x = switched[1].rendition
    sizes = {}
    for name, init_name in [("1.m4s", "init.mp4"), ("2.m4s", "init-1.mp4"),
                            ("3.0.m4s", "init-2.mp4")]:
        status, init = x.resource(init_name)
        assert status is Availability.AVAILABLE and init is not None
        status, media = x.resource(name)
        assert status is Availability.AVAILABLE and media is not None
        sizes[name] = _decode_size(init, media)
    assert sizes == {"1.m4s": (320, 240), "2.m4s": (160, 120), "3.0.m4s": (320, 240)}
    assert x.resource("init-3.mp4") == (Availability.NOT_FOUND, None)
    assert x.init_segment == x.resource("init-2.mp4")[1]  # the current track's


def test_a_hidden_rendition_leaves_the_master_but_keeps_playing() -> None:
    big, small, audio = _sources()
    pres = Presentation(PackagerConfig(segment_target_s=1.0, part_target_s=0.25))
    x = pres.add_rendition("720p", video=big.video, audio=audio.audio, bandwidth_bps=900_000)
    pres.add_rendition("360p", video=small.video, audio=audio.audio, bandwidth_bps=300_000)
    feed = Feeder(x, audio)
    feed.push(big, range(0, 40))
    assert b"720p/index.m3u8" in pres.master_playlist()
    pres.set_hidden("720p", True)
    master = pres.master_playlist()
    assert b"720p/" not in master and b"360p/index.m3u8" in master
    before = x.media_playlist()
    feed.push(big, range(40, 60))
    assert x.media_playlist() != before  # old players' playlist still moves
    pres.set_hidden("720p", False)
    assert b"720p/index.m3u8" in pres.master_playlist()
    validate_all([("master", master), ("media", x.media_playlist())])


def test_discontinuity_sequence_counts_breaks_that_left_the_window(
    switched: tuple[Presentation, Feeder, Encoded, Encoded],
) -> None:
    _pres, feed, big, _small = switched
    x = feed.rendition
    feed.push(big, range(100, 180))  # closes 3, 4, 5: a window of 3 keeps 3-5
    text = x.media_playlist().decode()
    assert "#EXT-X-MEDIA-SEQUENCE:3\n" in text
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text  # segment 2's break has left
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1  # segment 3's is still listed
    # the header's map is the first listed segment's
    assert '#EXT-X-MAP:URI="init-2.mp4"' in text.split("#EXTINF")[0]
    validate_all([("ll", text)])


def test_a_switch_must_start_on_a_keyframe() -> None:
    big, small, audio = _sources()
    pres = Presentation(PackagerConfig(segment_target_s=1.0, part_target_s=0.25))
    x = pres.add_rendition("720p", video=big.video, audio=audio.audio)
    Feeder(x, audio).push(big, range(0, 20))
    x.switch_video(small.video)
    s = small.samples[20]
    assert not s.keyframe
    with pytest.raises(HLSError, match="keyframe"):
        x.push_video(Sample(s.data, s.dts, s.pts, s.keyframe, WALL))


def test_an_extra_idr_starts_an_independent_part_not_a_segment() -> None:
    """The ladder's extra IDRs (media.independent_s) come as `independent`: a part starts
    INDEPENDENT there, but segments still cut only on `keyframe` (the source's)."""
    video = encode_video(60, width=160, height=120, gop=10)  # real IDRs every 10 frames
    pres = Presentation(PackagerConfig(segment_target_s=1.0, part_target_s=1 / 3))
    x = pres.add_rendition("r", video=video.video)
    events = []
    for i, s in enumerate(video.samples):
        assert s.keyframe == (i % 10 == 0)
        events += x.push_video(Sample(s.data, s.dts, s.pts, keyframe=i % 30 == 0,
                                      wallclock_s=WALL + i / 30, independent=i % 30 > 0 and
                                      i % 10 == 0))
    segments = [e for e in events if isinstance(e, Segment)]
    assert [s.msn for s in segments] == [0]  # one segment per "source" GOP of 30 frames
    assert [p.independent for p in segments[0].parts] == [True, True, True]
    text = x.media_playlist().decode()
    assert text.count("INDEPENDENT=YES") >= 4  # segment 0's three parts and 1.0
    validate_all([("ll", text)])
