"""HTTP routes of chat: post and history (`/api/streams/{id}/chat`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import trio
from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import (
    security_scheme,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from ...protocols.chat import VERSION, ChatProtocolError, parse_client_frame
from ..api import Model, PageQuery, authenticate, deps, errors
from ..errors import ApiError, NotFoundError, ValidationFailed
from .pipeline import ChatPoster, PostRejected, message_bodies

bp = Blueprint("chat", __name__, url_prefix="/api/streams")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

# How each refusal from the pipeline maps onto HTTP.
_STATUS = {"banned": 403, "timed_out": 403, "followers_only": 403, "slow_mode": 429,
           "rate_limited": 429, "room_busy": 429, "blocked": 422, "too_long": 400,
           "unavailable": 503}


class PostIn(Model):
    client_id: Annotated[str, Field(min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        description="your id for this message; a retry with the same id is not posted twice")
    text: Annotated[str, Field(min_length=1, max_length=500)]


class ChatMessageOut(BaseModel):
    id: str
    seq: int
    room: str
    user_id: str
    username: str
    text: str
    at: datetime


class PostOut(BaseModel):
    id: str
    status: str = Field(description="visible, or held for moderator review")


class HistoryOut(BaseModel):
    items: list[ChatMessageOut]
    next_cursor: str | None


def _poster() -> ChatPoster:
    poster: ChatPoster | None = deps().services.get("chat")
    if poster is None:
        raise ApiError("chat is not running in this gateway", status=503, code="unavailable")
    return poster


@bp.post("/<stream_id>/chat")
@tag(["chat"])
@security_scheme(BEARER)
@validate_request(PostIn)
@validate_response(PostOut, 201)
@errors(400, 401, 403, 404, 422, 503)
async def post_message(stream_id: str, data: PostIn) -> tuple[PostOut, int]:
    """Post to a stream's chat. 201 means the message is persisted (visible or held)."""
    claims = await authenticate()
    # The same rules as a chat `send` frame (control characters, blank text, ...).
    try:
        parse_client_frame(json.dumps(
            {"v": VERSION, "type": "send", "id": data.client_id, "text": data.text}))
    except ChatProtocolError as exc:
        raise ValidationFailed(exc.message, code=str(exc.code)) from None
    max_chars = deps().config.chat.max_message_chars
    if len(data.text) > max_chars:
        raise ValidationFailed(f"text: at most {max_chars} characters", code="too_long")
    await deps().services["streams"].get(stream_id)  # 404 for an unknown stream
    limits = deps().services.get("chat_limits")
    try:
        if limits is not None:
            limits.check(claims.user_id, stream_id)
        reply = await _poster().post(user_id=claims.user_id, room_id=stream_id,
                                     client_id=data.client_id, text=data.text)
    except PostRejected as exc:
        raise ApiError(exc.message, status=_STATUS.get(exc.code, 403), code=exc.code) from None
    except trio.TooSlowError:
        raise ApiError("chat workers did not answer in time; retry with the same client_id",
                       status=503, code="unavailable") from None
    return PostOut(id=str(reply["id"]), status=str(reply["status"])), 201


@bp.get("/<stream_id>/chat")
@tag(["chat"])
@validate_querystring(PageQuery)
@validate_response(HistoryOut)
@errors(400, 404)
async def history(stream_id: str, query_args: PageQuery) -> HistoryOut:
    """Chat history, newest first, paginated by cursor (held and deleted are left out)."""
    store = deps().store
    if await store.get_stream(stream_id) is None:
        raise NotFoundError("no such stream", code="stream_not_found")
    page = await store.list_chat_messages(stream_id, cursor=query_args.cursor,
                                          limit=query_args.limit)
    items = [ChatMessageOut(**body) for body in await message_bodies(store, page.items)]
    return HistoryOut(items=items, next_cursor=page.next_cursor)
