"""Sans-I/O HLS and LL-HLS packaging: fMP4/CMAF muxing, segment/part model, playlists.

The media packager feeds encoded samples into a `Rendition`; the origin asks the same
objects for cached playlist and media bytes and applies the blocking-reload rules.
Nothing here does I/O or keeps time: the caller owns the clock, the sockets and waiting.

    pres = Presentation(PackagerConfig(segment_target_s=2.0, part_target_s=1 / 3))
    hd = pres.add_rendition("720p", video=VideoTrack.from_extradata(sps_pps),
                            audio=AudioTrack.from_asc(asc), bandwidth_bps=3_000_000)
    hd.push_video(Sample(avcc, dts=dts_90k, pts=pts_90k, keyframe=key, wallclock_s=now))
    hd.push_audio(Sample(aac_frame, dts=dts_in_samples))

    req = parse_query(query)             # HLSError -> 400
    hd.check_request(req)                # HLSError -> 400 (too far ahead)
    if hd.playlist_ready(req): body = hd.media_playlist(skip=req.skip or False)
"""

from ._codecs import AACConfig, H264Config, annexb_to_avcc, avcc_from_nals, split_annexb
from ._errors import HLSError
from ._fmp4 import VIDEO_TIMESCALE, AudioTrack, VideoTrack, fragment, init_segment
from ._model import (
    INIT_URI,
    PART_SLACK_S,
    PackagerConfig,
    Part,
    Resource,
    Sample,
    Segment,
    SegmentInfo,
    init_uri,
    parse_resource,
    part_uri,
    segment_uri,
)
from ._playlist import Variant, master_playlist, steered_master_playlist, vod_playlist
from ._reload import (
    Availability,
    BlockingRequest,
    LivePosition,
    advance_part_limit,
    check_request,
    parse_query,
    playlist_ready,
)
from ._rendition import CLASSIC_PLAYLIST_URI, PLAYLIST_URI, Presentation, Rendition

__all__ = [
    "CLASSIC_PLAYLIST_URI",
    "INIT_URI",
    "PART_SLACK_S",
    "PLAYLIST_URI",
    "VIDEO_TIMESCALE",
    "AACConfig",
    "AudioTrack",
    "Availability",
    "BlockingRequest",
    "H264Config",
    "HLSError",
    "LivePosition",
    "PackagerConfig",
    "Part",
    "Presentation",
    "Rendition",
    "Resource",
    "Sample",
    "Segment",
    "SegmentInfo",
    "Variant",
    "VideoTrack",
    "advance_part_limit",
    "annexb_to_avcc",
    "avcc_from_nals",
    "check_request",
    "fragment",
    "init_segment",
    "init_uri",
    "master_playlist",
    "parse_query",
    "parse_resource",
    "part_uri",
    "playlist_ready",
    "segment_uri",
    "split_annexb",
    "steered_master_playlist",
    "vod_playlist",
]
