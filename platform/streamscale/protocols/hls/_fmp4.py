"""Hand-written fMP4/CMAF muxer: one init segment per rendition, one fragment per part.

A rendition is one muxed file (H.264 video as track 1, AAC audio as track 2): every
player handles muxed fMP4, the master playlist needs no EXT-X-MEDIA audio group, and
audio and video stay in the same part so a part is playable on its own. Each fragment is
moof (mfhd, then one traf per track with tfhd, tfdt and trun) + one mdat, with
default-base-is-moof so a fragment means the same wherever it is stored: alone as an
LL-HLS part, or concatenated with its siblings as a full segment.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ._boxes import MATRIX, box, descriptor, full_box
from ._codecs import AACConfig, H264Config

VIDEO_TIMESCALE = 90_000
_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
_TRUN_DATA_OFFSET = 0x000001
_TRUN_DURATION = 0x000100
_TRUN_SIZE = 0x000200
_TRUN_FLAGS = 0x000400
_TRUN_CTO = 0x000800
# sample_flags (ISO/IEC 14496-12 8.8.3.1): depends_on=2 for sync samples; depends_on=1
# plus is_non_sync for the rest, which is what players seek and switch on.
SYNC_SAMPLE_FLAGS = 0x02000000
NON_SYNC_SAMPLE_FLAGS = 0x01010000


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """An H.264 track; timestamps are in the 90 kHz video timescale."""

    config: H264Config

    @classmethod
    def from_extradata(cls, extradata: bytes) -> VideoTrack:
        return cls(H264Config.from_extradata(extradata))

    @property
    def timescale(self) -> int:
        return VIDEO_TIMESCALE


@dataclass(frozen=True, slots=True)
class AudioTrack:
    """An AAC track; timestamps are in samples (timescale = sample rate)."""

    config: AACConfig

    @classmethod
    def from_asc(cls, asc: bytes) -> AudioTrack:
        return cls(AACConfig.from_asc(asc))

    @property
    def timescale(self) -> int:
        return self.config.sample_rate


@dataclass(frozen=True, slots=True)
class FragmentSample:
    """One sample as it goes into a trun: payload, duration, sync flag, pts - dts."""

    data: bytes
    duration: int
    sync: bool = True
    cto: int = 0


@dataclass(frozen=True, slots=True)
class TrackRun:
    """The samples of one track inside one fragment, starting at `base_dts`."""

    track_id: int
    base_dts: int
    samples: Sequence[FragmentSample]
    per_sample_flags: bool = True


def _trak(track_id: int, track: VideoTrack | AudioTrack) -> bytes:
    video = isinstance(track, VideoTrack)
    width = track.config.width if isinstance(track, VideoTrack) else 0
    height = track.config.height if isinstance(track, VideoTrack) else 0
    tkhd = full_box(
        b"tkhd",
        0,
        0x3,
        struct.pack(">IIIII8xhhH2x", 0, 0, track_id, 0, 0, 0, 0, 0 if video else 0x0100),
        MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = full_box(
        b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, 0x55C4, 0)
    )  # language "und"
    handler, name = (b"vide", b"VideoHandler\0") if video else (b"soun", b"SoundHandler\0")
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name)
    media_header = full_box(b"vmhd", 0, 1, bytes(8)) if video else full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), _sample_entry(track)),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    minf = box(b"minf", media_header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _sample_entry(track: VideoTrack | AudioTrack) -> bytes:
    if isinstance(track, VideoTrack):
        cfg = track.config
        return box(
            b"avc1",
            bytes(6),
            struct.pack(">H", 1),
            bytes(16),
            struct.pack(">HHIIIH", cfg.width, cfg.height, 0x00480000, 0x00480000, 0, 1),
            bytes(32),
            struct.pack(">Hh", 0x0018, -1),
            box(b"avcC", cfg.avcc_record()),
        )
    acfg = track.config
    esds = full_box(
        b"esds",
        0,
        0,
        descriptor(
            0x03,
            struct.pack(">HB", 0, 0),
            descriptor(
                0x04, struct.pack(">BBBHII", 0x40, 0x15, 0, 0, 0, 0), descriptor(0x05, acfg.asc)
            ),
            descriptor(0x06, b"\x02"),
        ),
    )
    return box(
        b"mp4a",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),
        struct.pack(
            ">HHHHI",
            acfg.channels,
            16,
            0,
            0,
            (acfg.sample_rate if acfg.sample_rate < 65536 else 0) << 16,
        ),
        esds,
    )


def init_segment(tracks: Sequence[VideoTrack | AudioTrack]) -> bytes:
    """ftyp + moov for the given tracks, numbered 1.. in order."""
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcmp41isom")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH10x", 0, 0, 1000, 0, 0x00010000, 0x0100),
        MATRIX,
        bytes(24),
        struct.pack(">I", len(tracks) + 1),
    )
    traks = [_trak(i + 1, track) for i, track in enumerate(tracks)]
    trex = [
        full_box(b"trex", 0, 0, struct.pack(">IIIII", i + 1, 1, 0, 0, 0))
        for i in range(len(tracks))
    ]
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trex))


def _traf(run: TrackRun, data_offset: int) -> bytes:
    flags = _TRUN_DATA_OFFSET | _TRUN_DURATION | _TRUN_SIZE
    if run.per_sample_flags:
        flags |= _TRUN_FLAGS | _TRUN_CTO
        entries = b"".join(
            struct.pack(
                ">IIIi",
                s.duration,
                len(s.data),
                SYNC_SAMPLE_FLAGS if s.sync else NON_SYNC_SAMPLE_FLAGS,
                s.cto,
            )
            for s in run.samples
        )
    else:
        entries = b"".join(struct.pack(">II", s.duration, len(s.data)) for s in run.samples)
    return box(
        b"traf",
        full_box(b"tfhd", 0, _TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", run.track_id)),
        full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base_dts)),
        full_box(b"trun", 1, flags, struct.pack(">Ii", len(run.samples), data_offset), entries),
    )


def fragment(sequence: int, runs: Sequence[TrackRun]) -> bytes:
    """moof + mdat for one part; track data sits in the mdat in `runs` order."""
    runs = [run for run in runs if run.samples]
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    # The trun data offsets depend on the moof size, which does not depend on their values.
    moof_size = len(box(b"moof", mfhd, *(_traf(run, 0) for run in runs)))
    offset = moof_size + 8
    trafs = []
    for run in runs:
        trafs.append(_traf(run, offset))
        offset += sum(len(s.data) for s in run.samples)
    mdat = box(b"mdat", *(s.data for run in runs for s in run.samples))
    return box(b"moof", mfhd, *trafs) + mdat
