"""Query and response bodies of `GET /api/streams/{id}/analytics`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, WithJsonSchema

from ..api import Model

Resolution = Literal["auto", "raw", "1m", "1h"]
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _iso_only(value: Any) -> Any:
    """Pydantic's lax datetimes also take unix seconds (`from=0.5`): ISO 8601 only here."""
    if not isinstance(value, str) or not _ISO.match(value):
        raise ValueError("expected an ISO 8601 date and time with a time zone, "
                         "e.g. 2026-12-04T18:00:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_only),
                    WithJsonSchema({"type": "string", "format": "date-time"})]


class AnalyticsQuery(Model):
    model_config = Model.model_config | {"strict": False}
    from_: Instant | None = Field(
        default=None, alias="from",
        description="ISO 8601 with a time zone; default: when the stream went live")
    to: Instant | None = Field(
        default=None, description="ISO 8601 with a time zone, after `from`; default: now")
    resolution: Resolution = Field(
        default="auto", description="raw: every sample (ranges up to 6 h within the raw "
        "retention); 1m / 1h: buckets (up to 7 / 400 days); auto: the finest that fits")


class ViewerPoint(BaseModel):
    at: datetime = Field(description="raw: the sample's time; buckets: the bucket's start")
    concurrent: float = Field(ge=0, description="raw: concurrent viewers; buckets: average")
    concurrent_max: int = Field(ge=0)
    unique_viewers: int = Field(ge=0, description="distinct sessions since live, by then")
    watch_s: float = Field(ge=0, description="viewer-seconds watched in the interval")
    bytes: int = Field(ge=0)
    by_rendition: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="raw: concurrent viewers per rendition; buckets: the peak of each")


class ChatPoint(BaseModel):
    at: datetime = Field(description="the bucket's start (1 min, or 1 h at resolution 1h)")
    messages: int = Field(ge=0, description="posted, whatever became of them")
    messages_per_minute: float = Field(ge=0)
    held: int = Field(ge=0, description="held for review by moderation when posted")
    removed: int = Field(ge=0, description="deleted in this bucket")


class HealthPoint(BaseModel):
    at: datetime
    ingest_kbps: float = Field(ge=0, description="received from the publisher")
    frame_rate_fps: float = Field(ge=0, description="from the publisher's timestamps")
    frame_rate_min_fps: float = Field(ge=0)
    keyframe_interval_s: float = Field(ge=0)
    frames: int = Field(ge=0, description="video frames received")
    dropped_frames: int = Field(
        ge=0, description="received but in no rendition: before the first keyframe, "
        "without a configured ladder, lost to a transcoder restart, or undecodable")
    transcoder_behind_s: float = Field(ge=0, description="buckets: the maximum")
    transcoder_load: float = Field(
        ge=0, description="ladder seconds per media second (> 1: falling behind); "
        "buckets: the maximum")
    shed_rungs: list[str] = Field(description="rungs shed by overload (buckets: any time)")


class AnalyticsSummary(BaseModel):
    peak_viewers: int = Field(ge=0)
    unique_viewers: int = Field(ge=0)
    watch_s: float = Field(ge=0, description="total viewer-seconds in the range")
    watch_minutes: float = Field(ge=0)
    viewers_by_rendition: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="peak concurrent viewers per rendition in the range")
    chat_messages: int = Field(ge=0)
    chat_messages_per_minute: float = Field(ge=0, description="average over the range")
    chat_held: int = Field(ge=0)
    chat_removed: int = Field(ge=0)
    frames: int = Field(ge=0)
    dropped_frames: int = Field(ge=0)
    transcoder_behind_max_s: float = Field(ge=0)
    transcoder_load_max: float = Field(ge=0)
    shed_rungs: list[str]


class AnalyticsOut(BaseModel):
    stream_id: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    resolution: Literal["raw", "1m", "1h"]
    summary: AnalyticsSummary
    viewers: list[ViewerPoint]
    chat: list[ChatPoint]
    health: list[HealthPoint]
