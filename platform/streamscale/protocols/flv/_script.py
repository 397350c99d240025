"""FLV script data tag bodies: `onMetaData`, as sent directly or via `@setDataFrame`."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamscale.protocols.rtmp import AMF0Error, AMF0Value, decode_amf0

from ._errors import FLVError

__all__ = ["ScriptTag", "parse_script"]


@dataclass(frozen=True, slots=True)
class ScriptTag:
    """A script data call such as `onMetaData(properties)`.

    `set_data_frame` is true when the publisher wrapped it in `@setDataFrame` (ffmpeg, OBS),
    which asks the server to keep it and replay it to players; `properties` is the object or
    ECMA array argument when there is one (width, height, framerate, videocodecid, encoder...).
    """

    name: str
    properties: dict[str, AMF0Value] = field(hash=False)
    args: tuple[AMF0Value, ...] = field(hash=False)
    set_data_frame: bool = False

    def number(self, key: str) -> float | None:
        """A numeric property, or None when absent or not a number."""
        value = self.properties.get(key)
        return value if isinstance(value, float) else None


def parse_script(payload: bytes) -> ScriptTag:
    try:
        values = decode_amf0(payload)
    except AMF0Error as exc:
        raise FLVError(f"malformed script data: {exc}") from exc
    set_data_frame = bool(values) and values[0] == "@setDataFrame"
    if set_data_frame:
        values = values[1:]
    if not values or not isinstance(values[0], str):
        raise FLVError("script data does not start with a name")
    name, args = values[0], tuple(values[1:])
    properties = args[0] if args and isinstance(args[0], dict) else {}
    return ScriptTag(name, dict(properties), args, set_data_frame)
