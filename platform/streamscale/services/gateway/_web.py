"""The web UI, served by the gateway itself: pages, static files, the browser's session.

No build step: `streamscale/web/` holds one HTML file per page, plain ES modules and one
stylesheet (conventions at the top of web/app.js). Pages are listed in `PAGES`; a page
is a path -> HTML file, and its script and style come from `/static/`.

Every UI response carries a strict CSP (no inline script or style; connections only to
this gateway, the chat WebSocket and the origin/edges that serve media, whose URLs come
from the started services or the config, since they listen on other ports), no framing,
no sniffing and no referrer beyond the origin.

The browser's session (services/websession.py): `POST /api/session` signs in and sets
httpOnly cookies, `POST /api/session/refresh` rotates them, `DELETE /api/session` signs
out, `GET /api/session` says who is signed in, `POST /api/session/token` hands the page
a short-lived access token for the chat WebSocket's `join` frame (kept in memory only).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from quart import Blueprint, Quart, Response, request, send_from_directory
from quart_schema import document_response, hide, tag, validate_request
from werkzeug.exceptions import NotFound

from ...config import Config
from .. import websession
from ..api import authenticate, client_ip, deps, errors
from ..errors import Unauthorized
from ..users import UserService
from ..users._schemas import LoginIn, SignedOut, UserOut

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

# path -> page file in WEB_DIR. `<id:...>` parts are the API's id converter.
PAGES: dict[str, str] = {
    "/": "browse.html",
    "/search": "search.html",
    "/channel/<id:stream_id>": "channel.html",
    "/login": "login.html",
    "/register": "register.html",
    "/account": "account.html",
    "/dashboard": "dashboard.html",
    "/moderation": "moderation.html",
}

bp = Blueprint("session", __name__, url_prefix="/api/session")


class SessionOut(BaseModel):
    user: UserOut | None = Field(description="who is signed in; null when nobody is")
    refreshable: bool = Field(description="a refresh cookie is there: POST "
                              "/api/session/refresh may sign you back in")
    chat_url: str = Field(description="the chat WebSocket (docs/chat-protocol.md)")


class ChatTokenOut(BaseModel):
    token: str = Field(description="an access token for the chat join frame; keep it in "
                       "memory, never in storage")
    expires_in: int


def _svc() -> UserService:
    svc: UserService = deps().services["users"]
    return svc


async def _user_out(user_id: str) -> UserOut:
    from ..users._api import _out

    return await _out(await _svc().get(user_id), private=True)


def _chat_url(config: Config) -> str:
    from ...runtime import current_resources

    try:
        return current_resources().service_url("chat", "ws", config.chat_url)
    except RuntimeError:  # outside the runtime (an app built by a test)
        return config.chat_url


async def _session_response(access: str, access_ttl_s: int, refresh: str,
                            refresh_ttl_s: int, user_id: str, config: Config) -> Response:
    out = SessionOut(user=await _user_out(user_id), refreshable=True,
                     chat_url=_chat_url(config))
    response = Response(out.model_dump_json(), content_type="application/json")
    websession.set_session(response, access_token=access, access_ttl_s=access_ttl_s,
                           refresh_token=refresh, refresh_ttl_s=refresh_ttl_s)
    return response


@bp.get("")
@tag(["session"])
@document_response(SessionOut)
async def get_session() -> Response:
    """Who the browser's session cookie belongs to (user null when signed out or the
    access cookie lapsed; then `refreshable` says whether a refresh may help)."""
    user = None
    if websession.uses_cookie():
        try:
            user = await _user_out((await authenticate()).user_id)
        except Unauthorized:
            user = None
    out = SessionOut(user=user, refreshable=websession.REFRESH_COOKIE in request.cookies,
                     chat_url=_chat_url(deps().config))
    return Response(out.model_dump_json(), content_type="application/json")


@bp.post("")
@tag(["session"])
@validate_request(LoginIn)
@document_response(SessionOut)
@errors(400, 401)
async def sign_in(data: LoginIn) -> Response:
    """Sign in a browser: like POST /api/users/login, but the tokens go into httpOnly
    SameSite=Strict cookies, with a script-readable CSRF cookie to echo in X-CSRF-Token."""
    deps().rate_limits.hit("login", client_ip())
    tokens = await _svc().login(login=data.login, password=data.password)
    return await _session_response(tokens.access_token, tokens.expires_in,
                                   tokens.refresh_token, tokens.refresh_expires_in,
                                   tokens.user.id, deps().config)


@bp.post("/refresh")
@tag(["session"])
@document_response(SessionOut)
@errors(401, 403)
async def refresh() -> Response:
    """Rotate the session's cookies with the refresh cookie (CSRF header required)."""
    if websession.REFRESH_COOKIE not in request.cookies:
        raise Unauthorized("no session to refresh: sign in", code="session_expired")
    websession.check_csrf()
    deps().rate_limits.hit("login", client_ip())
    try:
        tokens = await _svc().refresh(request.cookies[websession.REFRESH_COOKIE])
    except Unauthorized:
        raise Unauthorized("the session expired or was signed out elsewhere: sign in",
                           code="session_expired") from None
    return await _session_response(tokens.access_token, tokens.expires_in,
                                   tokens.refresh_token, tokens.refresh_expires_in,
                                   tokens.user.id, deps().config)


@bp.delete("")
@tag(["session"])
@document_response(SignedOut)
@errors(403)
async def sign_out() -> Response:
    """Sign the browser out: revoke the refresh token's family and clear the cookies."""
    if any(c in request.cookies for c in (websession.ACCESS_COOKIE,
                                          websession.REFRESH_COOKIE)):
        websession.check_csrf()
    token = request.cookies.get(websession.REFRESH_COOKIE)
    if token:
        await _svc().logout(token)
    response = Response(SignedOut(signed_out=True).model_dump_json(),
                        content_type="application/json")
    websession.clear_session(response)
    return response


@bp.post("/token")
@tag(["session"])
@document_response(ChatTokenOut)
@errors(401, 403)
async def chat_token() -> Response:
    """A fresh access token for the page's chat WebSocket join (the cookie is httpOnly,
    so the page cannot read it; this hands one over for a socket, not for storage)."""
    if not websession.uses_cookie():
        raise Unauthorized("sign in first (session cookie)", code="unauthorized")
    claims = await authenticate()
    token, ttl_s = deps().keys.sign(user_id=claims.user_id, username=claims.username)
    return Response(ChatTokenOut(token=token, expires_in=ttl_s).model_dump_json(),
                    content_type="application/json", headers={"Cache-Control": "no-store"})


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def media_origins(config: Config) -> list[str]:
    """Where a page connects besides this gateway: the chat WebSocket, the origin and
    every edge (bound URLs of services started in this process, else the configured)."""
    from ...runtime import current_resources

    urls = [config.chat_url, config.origin_url] + [e.url for e in config.cdn.edges]
    try:
        resources = current_resources()
    except RuntimeError:
        resources = None
    if resources is not None:
        edges = resources.started_urls.get("edge", {})
        urls = [resources.service_url("chat", "ws", config.chat_url),
                resources.service_url("origin", "hls", config.origin_url)]
        urls += [edges.get(e.name, e.url) for e in config.cdn.edges]
    out: list[str] = []
    for url in urls:
        origin = _origin(url)
        if origin and origin not in out:
            out.append(origin)
    return out


def content_security_policy(config: Config) -> str:
    others = " ".join(media_origins(config))
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'",
        "img-src 'self' data:", f"connect-src 'self' {others}",
        f"media-src 'self' blob: {others}",
        "worker-src 'self' blob:", "object-src 'none'", "base-uri 'none'",
        "form-action 'self'", "frame-ancestors 'none'",
    ])


def _prefers_html() -> bool:
    """A browser's navigation (text/html above JSON), not a script or curl (*/*)."""
    accept = request.accept_mimetypes
    return accept["text/html"] > accept["application/json"]


def install(app: Quart, config: Config) -> None:
    """Mount the pages, /static/ and the session routes; headers on UI responses."""
    app.register_blueprint(bp)

    async def page(name: str) -> Response:
        if not (WEB_DIR / name).is_file():
            raise NotFound(f"no page {request.path}")
        response = await send_from_directory(WEB_DIR, name)
        response.headers["Cache-Control"] = "no-cache"
        return response

    for path, name in PAGES.items():
        async def view(name: str = name, **_: str) -> Response:
            return await page(name)

        hide(view)  # pages are not part of the API's OpenAPI document
        app.add_url_rule(path, f"web_page_{name.removesuffix('.html')}", view, methods=["GET"])

    # Quart's own static route (/static/<path:filename>, kept out of the OpenAPI document)
    # serves the web directory.
    app.static_folder = str(WEB_DIR)

    @app.after_request
    async def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        ui = not request.path.startswith("/api/") and request.path not in {"/api", "/metrics"}
        if ui and response.status_code == 404 and request.method == "GET" and (
                _prefers_html()):  # a browser's navigation
            # a person's mistyped address gets a page; a script's fetch keeps the JSON
            page_response = await send_from_directory(WEB_DIR, "notfound.html")
            page_response.status_code = 404
            page_response.headers["X-Request-Id"] = response.headers.get("X-Request-Id", "")
            response = page_response
        if ui:
            response.headers["Content-Security-Policy"] = content_security_policy(config)
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        return response
