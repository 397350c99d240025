"""What every service's HTTP routes share: the request context, auth, schemas of errors.

Routes live in each service (users, streaming, ...) as Quart blueprints; the gateway
mounts them. A route finds its dependencies with `deps()` and the caller with
`authenticate()`, so the same blueprint runs in the all-in-one process or behind a
gateway of its own.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from quart import current_app, g, has_websocket_context, request, websocket
from quart_schema import document_response
from werkzeug.routing import BaseConverter

from ..backends.storage import Store
from ..config import Config
from . import websession
from .auth import AccessClaims, KeyRing
from .errors import Unauthorized

ID_PATTERN = "[0-9a-f]{32}"  # clock.new_id(): what a user or stream id looks like

F = TypeVar("F", bound=Callable[..., Any])

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(eq=False, kw_only=True)
class Deps:
    config: Config
    store: Store
    keys: KeyRing
    rate_limits: Any  # gateway._ratelimit.RateLimits
    services: dict[str, Any]  # name -> domain service object (users, streams)


def deps() -> Deps:
    d: Deps = current_app.extensions["streamscale"]
    return d


def request_id() -> str:
    rid: str | None = g.get("request_id")
    if rid is None:
        # A WebSocket upgrade to an API path (none exists) is answered by the same handlers.
        headers = websocket.headers if has_websocket_context() else request.headers
        incoming = headers.get("X-Request-Id", "")
        rid = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
        g.request_id = rid
    return rid


def client_ip() -> str:
    if deps().config.gateway.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.remote_addr or "unknown"


async def authenticate() -> AccessClaims:
    """The caller's verified claims, or 401. Writes also count against the user's limit."""
    claims: AccessClaims | None = g.get("claims")
    if claims is None:
        if websession.uses_cookie():  # a browser's session cookie (CSRF checked)
            token = websession.cookie_token()
        else:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("sign in: send 'Authorization: Bearer <access token>'")
        claims = await deps().keys.verify(token.strip())
        if await deps().store.get_user(claims.user_id) is None:
            # Signed by us, but the account is gone (deleted since): the token is void.
            raise Unauthorized("the account of this access token no longer exists",
                               code="invalid_token")
        g.claims = claims
        if request.method not in {"GET", "HEAD", "OPTIONS"}:
            deps().rate_limits.hit("write", claims.user_id)
    return claims


async def maybe_authenticate() -> AccessClaims | None:
    if "Authorization" not in request.headers and not websession.uses_cookie():
        return None
    return await authenticate()


class IdConverter(BaseConverter):
    """`<id:name>` in a route: only what an id looks like, so `/users/register` is never a
    user id (its OPTIONS and 405 then list only its own methods)."""

    regex = ID_PATTERN


class Model(BaseModel):
    """Base of request bodies: unknown fields and type coercion are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PageQuery(Model):
    """?cursor=&limit= of every paginated list."""

    model_config = Model.model_config | {"strict": False}
    cursor: Annotated[str, Field(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> Callable[[F], F]:
    """Document error responses (all share ErrorBody) in the OpenAPI spec."""

    def decorate(func: F) -> F:
        for status in (*statuses, 413, 415, 429):
            func = document_response(ErrorBody, status)(func)
        return func

    return decorate
