"""Response bodies and queries of the social API (followers live now, recommendations)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ..api import Model


class StreamerOut(BaseModel):
    id: str
    username: str
    display_name: str


class LiveStreamOut(BaseModel):
    id: str
    title: str
    category: str
    tags: list[str]
    started_at: datetime | None
    viewer_count: int = Field(ge=0, description="concurrent viewers as of the last sample")
    playback_url: str
    streamer: StreamerOut


class LiveListOut(BaseModel):
    items: list[LiveStreamOut] = Field(description="most viewers first")


class RecommendationOut(BaseModel):
    stream: LiveStreamOut
    basis: Literal["followed_streamer_live", "followed_streamer_category", "watched_category"]
    reason: str = Field(description="why it is recommended, in words")


class RecommendationsOut(BaseModel):
    because_you_follow: list[RecommendationOut] = Field(
        description="live streams of streamers you follow, then live streams in the "
        "categories they stream in")
    popular_in_categories_you_watch: list[RecommendationOut] = Field(
        description="live streams, most viewers first, in the categories of the streams "
        "you watched; none that the first group has")


class LimitQuery(Model):
    model_config = Model.model_config | {"strict": False}
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class RecommendQuery(Model):
    model_config = Model.model_config | {"strict": False}
    limit: Annotated[int, Field(ge=1, le=50, description="per group")] = 10


class WatchOut(BaseModel):
    stream_id: str
    category: str
    first_at: datetime
    last_at: datetime
    watches: int = Field(ge=1, description="how many times you recorded watching it")


class WatchPageOut(BaseModel):
    items: list[WatchOut] = Field(description="most recently watched first")
    next_cursor: str | None


class WentLiveOut(BaseModel):
    """The data of one `event: live` on GET /api/me/notifications."""

    stream_id: str
    title: str
    category: str
    started_at: datetime
    playback_url: str
    streamer: StreamerOut
