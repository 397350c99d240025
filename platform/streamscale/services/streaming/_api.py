"""HTTP routes of the streaming service: /api/streams/..."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import (
    document_response,
    security_scheme,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from ...backends.storage import Stream
from ..api import authenticate, deps, errors
from ._schemas import ListQuery, StartIn, StreamKeyOut, StreamOut, StreamPageOut
from ._service import StreamService

bp = Blueprint("streams", __name__, url_prefix="/api/streams")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _svc() -> StreamService:
    svc: StreamService = deps().services["streams"]
    return svc


def _out(stream: Stream) -> StreamOut:
    return StreamOut(
        id=stream.id, user_id=stream.user_id, title=stream.title, category=stream.category,
        tags=list(stream.tags), quality=stream.quality, status=stream.status,  # type: ignore[arg-type]
        created_at=stream.created_at, started_at=stream.started_at,
        ended_at=stream.ended_at, viewer_count=stream.viewer_count,
        peak_viewers=stream.peak_viewers, unique_viewers=stream.unique_viewers,
        viewers_by_rendition=dict(stream.viewers_by_rendition),
        playback_url=_svc().playback_url(stream.id),
    )


def _key_out(stream: Stream, key: str) -> StreamKeyOut:
    ingest = _svc().ingest_url
    return StreamKeyOut(stream=_out(stream), stream_key=key, ingest_url=ingest,
                        publish_url=f"{ingest}/{key}")


@bp.post("/start")
@tag(["streams"])
@security_scheme(BEARER)
@validate_request(StartIn)
@validate_response(StreamKeyOut, 201)
@errors(400, 401)
async def start(data: StartIn) -> tuple[StreamKeyOut, int]:
    """Create a stream; publish to publish_url to go live. The key is shown only now."""
    claims = await authenticate()
    stream, key = await _svc().start(
        user_id=claims.user_id, title=data.title, category=data.category, tags=data.tags
    )
    return _key_out(stream, key), 201


@bp.post("/<stream_id>/stop")
@tag(["streams"])
@security_scheme(BEARER)
@validate_response(StreamOut)
@errors(400, 401, 403, 404)
async def stop(stream_id: str) -> StreamOut:
    """End your stream (idempotent)."""
    claims = await authenticate()
    return _out(await _svc().stop(user_id=claims.user_id, stream_id=stream_id))


@bp.post("/<stream_id>/key")
@tag(["streams"])
@security_scheme(BEARER)
@validate_response(StreamKeyOut)
@errors(400, 401, 403, 404, 409)
async def rotate_key(stream_id: str) -> StreamKeyOut:
    """Replace your stream key; the old key stops working at once."""
    claims = await authenticate()
    stream, key = await _svc().rotate_key(user_id=claims.user_id, stream_id=stream_id)
    return _key_out(stream, key)


@bp.get("/<id:stream_id>")
@tag(["streams"])
@document_response(StreamOut)
@errors(400, 404)
async def get_stream(stream_id: str) -> Response:
    """A stream's state and where to play it (may lag writes made elsewhere by ~1 s)."""
    # The hottest read of the API: serialised straight from the model (pydantic-core),
    # skipping quart-schema's generic response validation; the spec still documents it.
    body = _out(await _svc().get(stream_id)).model_dump_json()
    return Response(body, content_type="application/json")


@bp.get("")
@tag(["streams"])
@validate_querystring(ListQuery)
@validate_response(StreamPageOut)
@errors(400)
async def list_streams(query_args: ListQuery) -> StreamPageOut:
    """Streams, newest first, filtered by owner, status and category."""
    page = await _svc().list(
        user_id=query_args.user_id, status=query_args.status, category=query_args.category,
        cursor=query_args.cursor, limit=query_args.limit,
    )
    return StreamPageOut(items=[_out(s) for s in page.items], next_cursor=page.next_cursor)
