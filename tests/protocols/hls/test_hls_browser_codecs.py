"""`H264Config.browser_problem`: which H.264 every browser decodes, read from real SPS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import pytest

from streamscale.protocols.hls import H264Config

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
_X264_HELP = subprocess.run([FFMPEG, "-hide_banner", "-h", "encoder=libx264"],
                            capture_output=True, text=True, check=False).stdout
TEN_BIT = pytest.mark.skipif("yuv420p10le" not in _X264_HELP,
                             reason="this libx264 has no 10-bit support")


def _x264_config(tmp_path: Path, *args: str) -> H264Config:
    """The SPS/PPS libx264 writes for these options, via the ffmpeg CLI."""
    path = tmp_path / "clip.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=176x144:rate=10", "-frames:v", "2", "-c:v", "libx264",
                    *args, str(path)], check=True, timeout=60)
    with av.open(str(path)) as container:
        return H264Config.from_extradata(bytes(container.streams.video[0].codec_context.extradata))


@pytest.mark.parametrize(("args", "codec_prefix", "problem"), [
    (["-profile:v", "baseline", "-pix_fmt", "yuv420p"], "avc1.42", None),
    (["-profile:v", "main", "-pix_fmt", "yuv420p"], "avc1.4d", None),
    (["-profile:v", "high", "-pix_fmt", "yuv420p"], "avc1.64", None),
    (["-pix_fmt", "yuv444p"], "avc1.f4",
     "profile High 4:4:4 Predictive, chroma 4:4:4 (browsers decode"),
    (["-pix_fmt", "yuv422p"], "avc1.7a", "profile High 4:2:2, chroma 4:2:2 (browsers"),
    pytest.param(["-pix_fmt", "yuv420p10le"], "avc1.6e", "profile High 10, 10-bit (browsers",
                 marks=TEN_BIT),
    (["-pix_fmt", "gray"], "avc1.64", "chroma 4:0:0 (browsers"),
])
def test_browser_problem_of_real_x264_streams(
    tmp_path: Path, args: list[str], codec_prefix: str, problem: str | None
) -> None:
    config = _x264_config(tmp_path, *args)
    assert config.codec.startswith(codec_prefix)
    assert config.codec == f"avc1.{config.sps[1:4].hex()}"
    found = config.browser_problem()
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


def test_description_names_profile_chroma_depth_and_size() -> None:
    config = H264Config(sps=b"", pps=b"", width=1920, height=1080, profile_idc=110,
                        constraint_flags=0, level_idc=40, chroma_format_idc=1,
                        bit_depth_luma=10, bit_depth_chroma=10)
    assert config.description == "High 10, 4:2:0, 10-bit, 1920x1080"
    assert config.browser_problem() == (
        "profile High 10, 10-bit (browsers decode Baseline/Main/High 4:2:0 8-bit)")
    odd = H264Config(sps=b"", pps=b"", width=64, height=64, profile_idc=200,
                     constraint_flags=0, level_idc=10)
    assert odd.profile_name == "profile_idc 200"
    assert odd.browser_problem() == (
        "profile_idc 200 (browsers decode Baseline/Main/High 4:2:0 8-bit)")
