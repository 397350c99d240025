"""The API application: blueprints of every service, one error shape, request ids."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from pydantic import BaseModel
from quart import Response, has_websocket_context, jsonify, request, websocket
from quart_schema import QuartSchema, RequestSchemaValidationError, tag, validate_response
from quart_schema.openapi import QUART_SCHEMA_SECURITY_ATTRIBUTE
from quart_trio import QuartTrio
from quart_trio.wrappers.request import TrioRequest
from werkzeug.exceptions import HTTPException

from ...backends.storage import InvalidCursor, Store
from ...config import Config
from .. import discovery, social, streaming, users
from ..analytics import _api as analytics_api
from ..api import Deps, IdConverter, authenticate, request_id
from ..auth import KeyRing
from ..cdn.health import CdnHealth
from ..chat import _api as chat_api
from ..chat import _moderation_api as moderation_api
from ..chat.pipeline import ChatPoster
from ..chat.service import PostLimits
from ..errors import ApiError, error_body
from . import _metrics, _web
from ._body import MAX_DEPTH, check_json
from ._openapi import ApiOpenAPIProvider
from ._ratelimit import RateLimits

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
    411: "length_required", 413: "payload_too_large", 414: "uri_too_long",
    415: "unsupported_media_type", 429: "rate_limited",
}
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ApiRequest(TrioRequest):
    async def get_json(
        self, force: bool = False, silent: bool = False, cache: bool = True
    ) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        try:
            value = await super().get_json(force, silent, cache)
        except RecursionError:  # the decoder recurses per level: far past MAX_DEPTH
            raise ApiError(f"request body nests deeper than {MAX_DEPTH} levels",
                           code="nesting_too_deep") from None
        check_json(value)
        return value

    def on_json_loading_failed(self, error: Exception) -> NoReturn:
        raise ApiError(f"request body is not valid JSON: {error}", code="malformed_json")


class Health(BaseModel):
    status: str
    signing_keys: int


def create_app(
    config: Config, store: Store, keys: KeyRing, *, chat: ChatPoster | None = None,
    cdn_health: CdnHealth | None = None,
) -> QuartTrio:
    app = QuartTrio("streamscale")
    app.request_class = ApiRequest
    app.config.update(
        MAX_CONTENT_LENGTH=config.gateway.max_body_bytes,
        QUART_SCHEMA_CONVERSION_PREFERENCE="pydantic",
        JSON_SORT_KEYS=False,
    )
    QuartSchema(
        app,
        openapi_path="/api/openapi.json",
        swagger_ui_path="/api/docs",
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={"title": "streamscale API", "version": "0.1.0"},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}},
        openapi_provider_class=ApiOpenAPIProvider,
    )
    app.url_map.converters["id"] = IdConverter
    app.extensions["streamscale"] = Deps(
        config=config, store=store, keys=keys, rate_limits=RateLimits(config.gateway),
        services={
            "users": users.UserService(store, keys, config.auth),
            "streams": streaming.StreamService(store, config, cdn_health=cdn_health),
            "chat": chat,
            "chat_limits": PostLimits(config.chat, quiet_s=config.chat.room_quiet_s),
        },
    )
    app.register_blueprint(users.bp)
    app.register_blueprint(streaming.bp)
    app.register_blueprint(chat_api.bp)
    app.register_blueprint(moderation_api.bp)
    app.register_blueprint(social.bp)
    app.register_blueprint(analytics_api.bp)
    app.register_blueprint(discovery.bp)
    _web.install(app, config)  # the web UI under /, the browser session under /api/session
    _metrics.install(app)  # request counts and latency; GET /metrics (operators)

    @app.get("/api/health")
    @tag(["platform"])
    @validate_response(Health)
    async def health() -> Health:
        """Liveness: the gateway answers and has signing keys."""
        return Health(status="ok", signing_keys=len(keys.kids))

    @app.before_request
    async def check_request() -> None:
        request_id()
        length = request.content_length or 0
        if length > config.gateway.max_body_bytes:
            raise ApiError(  # close: we will not read a body that large to reuse the socket
                f"request body over {config.gateway.max_body_bytes} bytes",
                status=413, code="payload_too_large", headers={"Connection": "close"},
            )
        if length or request.headers.get("Transfer-Encoding"):
            # Read the body before any answer, even an early error (405, 415): hypercorn
            # otherwise leaves an unread body on a kept-alive connection and the client's
            # next request on it hangs.
            body = await request.get_data(True, False, False)  # cached for get_json
        else:
            body = b""
        view = app.view_functions.get(request.endpoint or "")
        if request.method != "OPTIONS" and getattr(view, QUART_SCHEMA_SECURITY_ATTRIBUTE, None):
            await authenticate()  # 401 before any complaint about the body, as documented
        if request.method in _BODY_METHODS and body:
            mimetype = request.mimetype
            if mimetype != "application/json" and not mimetype.endswith("+json"):
                raise ApiError(
                    "send the body as JSON (Content-Type: application/json)",
                    status=415, code="unsupported_media_type",
                )
            try:
                body.decode()
            except UnicodeDecodeError as exc:
                raise ApiError(f"request body is not UTF-8: {exc}", code="malformed_json") from None

    @app.after_request
    async def add_request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = request_id()
        return response

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        return _error(exc.status, exc.code, exc.message, exc.headers, exc.details)

    @app.errorhandler(InvalidCursor)
    async def invalid_cursor(exc: InvalidCursor) -> Response:
        return _error(400, "invalid_cursor", "invalid cursor", {}, None)

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(exc: RequestSchemaValidationError) -> Response:
        details = _validation_details(exc.validation_error)
        fields = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _error(400, "validation_error", f"invalid request: {fields}", {}, details)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        allowed = getattr(exc, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed)} if status == 405 and allowed else {}
        return _error(status, code, exc.description or code.replace("_", " "), headers, None)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        where = websocket if has_websocket_context() else request
        log.exception("unhandled error in %s %s [%s]", where.method, where.path, request_id())
        return _error(500, "internal", "internal error; quote the request id", {}, None)

    return app


def _error(
    status: int, code: str, message: str, headers: dict[str, str], details: Any
) -> Response:
    rid = request_id()
    response = jsonify(error_body(code, message, rid, details))
    response.status_code = status
    response.headers.update(headers)
    response.headers["X-Request-Id"] = rid  # also where after_request does not run (WebSocket)
    return response


def _validation_details(error: Exception) -> list[dict[str, str]]:
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return [{"field": "body", "message": str(error) or "must be a JSON object"}]
    out = []
    for e in errors():
        loc = ".".join(str(p) for p in e.get("loc", ())) or "body"
        message = str(e.get("msg", "invalid"))
        if e.get("type") == "extra_forbidden":
            message = "unknown field"
        out.append({"field": loc, "message": message.removeprefix("Value error, ")})
    return out
