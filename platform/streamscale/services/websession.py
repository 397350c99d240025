"""The browser's session: httpOnly cookies instead of tokens in script-readable storage.

A browser signs in with `POST /api/session` (services/gateway/_web.py) and gets three
cookies, all SameSite=Strict (Secure when the gateway is reached over https):

- `ss_access`: the access JWT (httpOnly, Path=/, lives as long as the token);
- `ss_refresh`: the refresh token (httpOnly, Path=/api/session, so only the session
  routes ever see it);
- `ss_csrf`: a random token the page's script CAN read; every unsafe request (POST,
  PUT, PATCH, DELETE) that authenticates with the cookies must echo it in the
  `X-CSRF-Token` header (double submit). SameSite=Strict already keeps other sites'
  requests from carrying the cookies; the header is the second lock (a same-site
  subdomain, an old browser).

`authenticate()` (services/api.py) reads `ss_access` only when the request has no
`Authorization` header, so API clients keep Bearer tokens and are never asked for CSRF.
"""

from __future__ import annotations

import hmac
import secrets

from quart import Response, current_app, request

from .errors import ApiError

ACCESS_COOKIE = "ss_access"
REFRESH_COOKIE = "ss_refresh"
CSRF_COOKIE = "ss_csrf"
CSRF_HEADER = "X-CSRF-Token"
REFRESH_PATH = "/api/session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def uses_cookie() -> bool:
    """The request authenticates with the session cookie (no Authorization header)."""
    return "Authorization" not in request.headers and ACCESS_COOKIE in request.cookies


def check_csrf() -> None:
    """403 unless an unsafe request echoes the CSRF cookie in the X-CSRF-Token header."""
    if request.method in _SAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise ApiError(f"missing or wrong {CSRF_HEADER} header (copy the {CSRF_COOKIE} "
                       "cookie into it)", status=403, code="csrf_failed")


def cookie_token() -> str:
    """The access token of the session cookie, after the CSRF check for unsafe methods."""
    check_csrf()
    return request.cookies.get(ACCESS_COOKIE, "")


def _secure() -> bool:
    """Secure cookies when the browser reaches us over https: directly, or through a
    TLS-terminating proxy named in gateway.public_url."""
    deps = current_app.extensions.get("streamscale")
    public_url = str(getattr(getattr(deps, "config", None), "gateway_url", ""))
    return request.scheme in {"https", "wss"} or public_url.startswith("https://")


def set_session(response: Response, *, access_token: str, access_ttl_s: int,
                refresh_token: str, refresh_ttl_s: int) -> str:
    """Put the session's cookies on `response`; returns the new CSRF token."""
    csrf = secrets.token_urlsafe(32)
    secure = _secure()
    response.set_cookie(ACCESS_COOKIE, access_token, max_age=access_ttl_s, path="/",
                        httponly=True, samesite="Strict", secure=secure)
    response.set_cookie(REFRESH_COOKIE, refresh_token, max_age=refresh_ttl_s,
                        path=REFRESH_PATH, httponly=True, samesite="Strict", secure=secure)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=refresh_ttl_s, path="/",
                        httponly=False, samesite="Strict", secure=secure)
    return csrf


def clear_session(response: Response) -> None:
    secure = _secure()
    response.delete_cookie(ACCESS_COOKIE, path="/", httponly=True, samesite="Strict",
                           secure=secure)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, httponly=True,
                           samesite="Strict", secure=secure)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="Strict", secure=secure)
