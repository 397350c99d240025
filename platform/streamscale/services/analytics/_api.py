"""HTTP route of the analytics service: GET /api/streams/{id}/analytics (owner only)."""

from __future__ import annotations

from datetime import UTC, datetime

from quart import Blueprint, Response
from quart_schema import document_response, security_scheme, tag, validate_querystring

from ..api import authenticate, deps, errors
from ..errors import Forbidden, NotFoundError
from ._schemas import AnalyticsOut, AnalyticsQuery
from .report import default_range, stream_analytics

bp = Blueprint("analytics", __name__, url_prefix="/api/streams")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


@bp.get("/<id:stream_id>/analytics")
@tag(["streams"])
@security_scheme(BEARER)
@validate_querystring(AnalyticsQuery)
@document_response(AnalyticsOut)
@errors(400, 401, 403, 404)
async def stream_analytics_route(stream_id: str, query_args: AnalyticsQuery) -> Response:
    """Your stream's analytics: viewers over time, chat activity, ingest health.

    Concurrent and unique viewers, watch time and viewers per rendition (from the edges'
    access records), chat messages per minute with held and removed ones, ingest bitrate,
    frame rate, keyframe interval, dropped frames, transcoder lag and shed rungs.
    """
    claims = await authenticate()
    d = deps()
    stream = await d.store.get_stream(stream_id)
    if stream is None:
        raise NotFoundError("no such stream")
    if stream.user_id != claims.user_id:
        raise Forbidden("only the stream's owner sees its analytics")
    now = datetime.now(UTC)
    since, until = default_range(stream, now)
    since = query_args.from_ or since
    until = query_args.to or until
    a = d.config.analytics
    body = await stream_analytics(
        d.store, stream, since=since.astimezone(UTC), until=until.astimezone(UTC),
        resolution=query_args.resolution, now=now, raw_retention_s=a.raw_retention_s,
        minute_retention_s=a.minute_retention_s)
    return Response(body.model_dump_json(by_alias=True), content_type="application/json")
