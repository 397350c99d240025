"""The browser's session through the real gateway: httpOnly SameSite=Strict cookies,
the double-submit CSRF header on unsafe methods (403 in the error shape without it),
Bearer clients untouched, refresh rotation, sign-out; the UI's pages and their headers."""

from __future__ import annotations

from pathlib import Path

import httpx

from streamscale.testing import make_config, running_platform

from ..helpers import assert_error, register


def _cookie_headers(r: httpx.Response) -> dict[str, str]:
    out = {}
    for raw in r.headers.get_list("set-cookie"):
        name = raw.split("=", 1)[0]
        out[name] = raw.lower()
    return out


async def test_cookie_session_with_csrf(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_platform(config, ("gateway", "chat")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as web:
        await register(web, "viewer")
        r = await web.post("/api/session", json={"login": "viewer",
                                                 "password": "correct horse 1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user"]["username"] == "viewer"
        assert body["chat_url"] == platform.url("chat", "ws")
        assert "access_token" not in r.text and "refresh_token" not in r.text
        cookies = _cookie_headers(r)
        assert set(cookies) == {"ss_access", "ss_refresh", "ss_csrf"}
        for name in ("ss_access", "ss_refresh"):
            assert "httponly" in cookies[name] and "samesite=strict" in cookies[name]
        assert "path=/api/session" in cookies["ss_refresh"]
        assert "httponly" not in cookies["ss_csrf"]
        assert "samesite=strict" in cookies["ss_csrf"]
        csrf = web.cookies["ss_csrf"]

        # reads authenticate with the cookie alone
        me = await web.get("/api/users/me")
        assert me.status_code == 200 and me.json()["username"] == "viewer"
        assert (await web.get("/api/session")).json()["user"]["username"] == "viewer"

        # an unsafe request with the cookie but without (or with a wrong) CSRF header: 403
        profile = {"display_name": "Vee"}
        assert_error(await web.patch("/api/users/me", json=profile), 403, "csrf_failed")
        assert_error(await web.patch("/api/users/me", json=profile,
                                     headers={"X-CSRF-Token": csrf + "x"}), 403, "csrf_failed")
        assert_error(await web.post("/api/session/token"), 403, "csrf_failed")
        assert_error(await web.post("/api/session/refresh"), 403, "csrf_failed")
        assert_error(await web.delete("/api/session"), 403, "csrf_failed")
        ok = await web.patch("/api/users/me", json=profile, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200 and ok.json()["display_name"] == "Vee"

        # Bearer clients never need the CSRF header, cookies or not
        async with httpx.AsyncClient(base_url=str(web.base_url), timeout=30) as bearer:
            tokens = (await bearer.post("/api/users/login", json={
                "login": "viewer", "password": "correct horse 1"})).json()
            r = await bearer.patch("/api/users/me", json={"bio": "hi"},
                                   headers={"Authorization": f"Bearer {tokens['access_token']}"})
            assert r.status_code == 200, r.text

        # a short-lived token for the chat join, usable as a Bearer token
        token = await web.post("/api/session/token", headers={"X-CSRF-Token": csrf})
        assert token.status_code == 200 and token.headers["cache-control"] == "no-store"
        async with httpx.AsyncClient(base_url=str(web.base_url), timeout=30) as other:
            r = await other.get("/api/users/me", headers={
                "Authorization": f"Bearer {token.json()['token']}"})
            assert r.json()["username"] == "viewer"

        # refresh rotates every cookie; the old refresh token is then spent
        old_refresh = web.cookies.get("ss_refresh", path="/api/session")
        r = await web.post("/api/session/refresh", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert set(_cookie_headers(r)) == {"ss_access", "ss_refresh", "ss_csrf"}
        assert web.cookies["ss_csrf"] != csrf
        async with httpx.AsyncClient(base_url=str(web.base_url), timeout=30) as thief:
            thief.cookies.set("ss_refresh", old_refresh, path="/api/session")
            thief.cookies.set("ss_csrf", "t")
            assert_error(await thief.post("/api/session/refresh",
                                          headers={"X-CSRF-Token": "t"}), 401, "session_expired")
        csrf = web.cookies["ss_csrf"]

        # sign out clears the cookies; the API then sees nobody
        r = await web.delete("/api/session", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        assert all("max-age=0" in c or "expires=" in c for c in _cookie_headers(r).values())
        assert "ss_access" not in web.cookies
        assert_error(await web.get("/api/users/me"), 401)
        assert (await web.get("/api/session")).json()["user"] is None
        assert_error(await web.post("/api/session/token"), 401)


async def test_pages_and_security_headers(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_platform(config, ("gateway", "chat", "origin", "edge")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as web:
        for path in ("/", "/login", "/register"):
            r = await web.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "script-src 'self';" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            connect = next(p for p in csp.split("; ") if p.startswith("connect-src"))
            for url in (platform.url("chat", "ws"), platform.url("origin", "hls"),
                        platform.url("edge", "a1"), platform.url("edge", "b1")):
                assert url.split("/")[2] in connect, (url, connect)
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "same-origin"
        js = await web.get("/static/app.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert_error(await web.get("/static/../pyproject.toml"), 404)
        assert_error(await web.get("/static/nope.js"), 404)
        # a mistyped page address: a page for a browser, the JSON error for a script
        page = await web.get("/no/such/page", headers={"Accept": "text/html"})
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "content-security-policy" in page.headers
        assert_error(await web.get("/no/such/page"), 404, "not_found")
        assert_error(await web.get("/api/no/such/route", headers={"Accept": "text/html"}), 404)
        api = await web.get("/api/health")
        assert "content-security-policy" not in api.headers  # the API's docs page differs
        spec = (await web.get("/api/openapi.json")).json()
        assert "/" not in spec["paths"] and "/api/session" in spec["paths"]
