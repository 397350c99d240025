"""FLV tag bodies as carried in RTMP messages: H.264 (AVC) video, AAC audio, script data.

Parse functions take one RTMP message payload and return a frozen dataclass; anything
malformed raises `FLVError`, and codecs the ingest does not take `FLVUnsupportedCodec`.
"""

from ._audio import (
    SAMPLE_RATES,
    AACConfig,
    AACFrame,
    AACSequenceHeader,
    AudioTag,
    parse_aac_config,
    parse_audio,
)
from ._errors import FLVError, FLVUnsupportedCodec
from ._h264 import SPSInfo, annexb, parse_sps, split_nal_units
from ._script import ScriptTag, parse_script
from ._video import (
    AVCConfig,
    AVCEndOfSequence,
    AVCFrame,
    AVCSequenceHeader,
    FrameType,
    VideoInfo,
    VideoTag,
    parse_avc_config,
    parse_video,
)

__all__ = [
    "SAMPLE_RATES",
    "AACConfig",
    "AACFrame",
    "AACSequenceHeader",
    "AVCConfig",
    "AVCEndOfSequence",
    "AVCFrame",
    "AVCSequenceHeader",
    "AudioTag",
    "FLVError",
    "FLVUnsupportedCodec",
    "FrameType",
    "SPSInfo",
    "ScriptTag",
    "VideoInfo",
    "VideoTag",
    "annexb",
    "parse_aac_config",
    "parse_audio",
    "parse_avc_config",
    "parse_script",
    "parse_sps",
    "parse_video",
    "split_nal_units",
]
