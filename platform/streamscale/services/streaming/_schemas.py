"""Request and response bodies of the streams API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from .. import validation as v
from ..api import Model


def _text(min_len: int, max_len: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "minLength": min_len, "maxLength": max_len,
                           "pattern": v.text_pattern(min_len=min_len)})


Title = Annotated[str, AfterValidator(lambda s: v.text(s, min_len=1, max_len=140)),
                  _text(1, 140)]
Category = Annotated[str, AfterValidator(lambda s: v.text(s, min_len=1, max_len=50)),
                     _text(1, 50)]
Tags = Annotated[list[str], AfterValidator(v.tags), WithJsonSchema({
    "type": "array", "maxItems": 10,
    "items": {"type": "string", "minLength": 1, "maxLength": 25, "pattern": v.TAG_PATTERN},
})]


class StartIn(Model):
    title: Title
    category: Category
    tags: Tags = Field(default_factory=list, description="up to 10; a-z 0-9 -")


class StreamOut(BaseModel):
    id: str
    user_id: str
    title: str
    category: str
    tags: list[str]
    quality: str
    status: Literal["created", "live", "ended"]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    viewer_count: int = Field(
        ge=0, description="concurrent viewers: sessions that fetched media within "
        "cdn.viewer_idle_s, as of the last sample (every cdn.viewer_sample_s); 0 once ended")
    peak_viewers: int = Field(ge=0, description="highest viewer_count so far")
    unique_viewers: int = Field(
        ge=0, description="distinct viewer sessions since the stream went live: exact up "
        "to 2,048, then a HyperLogLog estimate (standard error 0.81 %)")
    viewers_by_rendition: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="concurrent viewers by the rendition they last fetched (viewers that "
        "fetched only the master playlist are in viewer_count alone); empty once ended")
    playback_url: str


class StreamKeyOut(BaseModel):
    stream: StreamOut
    stream_key: str = Field(description="shown once; only its hash is stored")
    ingest_url: str = Field(description="RTMP server URL (OBS: Server)")
    publish_url: str = Field(description="ingest_url/stream_key, for ffmpeg")


class StreamPageOut(BaseModel):
    items: list[StreamOut]
    next_cursor: str | None


class ListQuery(Model):
    model_config = Model.model_config | {"strict": False}
    user_id: Annotated[str, Field(max_length=64)] | None = None
    status: Literal["created", "live", "ended"] | None = None
    category: Annotated[str, Field(max_length=50)] | None = None
    cursor: Annotated[str, Field(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
