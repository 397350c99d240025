"""Query strings and answers of the discovery API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema

from ...backends.storage import query_words
from ...backends.storage._interface_search import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_SEARCH_LIMIT,
)
from .. import validation as v
from ..api import Model
from ..streaming._schemas import StreamOut


def _query(value: str) -> str:
    v.unicode_text(value)
    if len(query_words(value)) > MAX_QUERY_WORDS:
        raise ValueError(f"at most {MAX_QUERY_WORDS} words")
    return value


def _listed(value: Any) -> Any:
    """?tags=a gives a string, ?tags=a&tags=b a list: both are a list of tags."""
    return [value] if isinstance(value, str) else value


Query = Annotated[str, Field(max_length=MAX_QUERY_CHARS), AfterValidator(_query)]
Category = Annotated[str, AfterValidator(lambda s: v.text(s, min_len=1, max_len=50)),
                     WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 50,
                                     "pattern": v.text_pattern(min_len=1)})]
Tags = Annotated[list[str], BeforeValidator(_listed), AfterValidator(v.tags), WithJsonSchema({
    "type": "array", "maxItems": 10,
    "items": {"type": "string", "minLength": 1, "maxLength": 25, "pattern": v.TAG_PATTERN},
})]
Cursor = Annotated[str, Field(max_length=200)]
Limit = Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT)]


class SearchQuery(Model):
    model_config = Model.model_config | {"strict": False}
    q: Query = Field("", description=(
        "words to find (each must begin a word of the title, tags, category, or the "
        f"streamer's username or display name); up to {MAX_QUERY_WORDS} words, "
        "punctuation separates words"))
    category: Category | None = Field(None, description="exactly this category")
    tags: Tags = Field(default_factory=list, description="every one of these tags")
    live: bool = Field(False, description="live streams only")
    sort: Literal["relevance", "viewers", "recency"] = "relevance"
    cursor: Cursor | None = None
    limit: Limit = 20


class LiveQuery(Model):
    model_config = Model.model_config | {"strict": False}
    category: Category | None = None
    cursor: Cursor | None = None
    limit: Limit = 20


class CategoriesQuery(Model):
    model_config = Model.model_config | {"strict": False}
    limit: Limit = 50


class SearchPageOut(BaseModel):
    items: list[StreamOut]
    next_cursor: str | None
    fuzzy: bool = Field(description="nothing matched as typed: these streams match the "
                        "indexed words nearest to the query's (typo tolerance)")


class CategoryOut(BaseModel):
    category: str
    live_streams: int = Field(ge=1)
    viewers: int = Field(ge=0, description="sum of the live streams' viewer_count")


class CategoriesOut(BaseModel):
    items: list[CategoryOut]
