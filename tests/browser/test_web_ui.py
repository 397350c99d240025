"""The web UI in Chromium, through the real gateway: register, sign in and out, account
edits and deletion, search; every page checked by axe-core (no serious or critical
violation) and photographed at laptop and phone width into reports/ui/. The session
lives in httpOnly cookies: the pages' script never sees a token, storage stays empty."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamscale.testing import make_config, running_platform
from streamscale.testing.browser import Browser

from .web_ui import check_page, goto, new_context, on_playwright, open_page, ready, sign_in

pytestmark = [pytest.mark.browser]

PASSWORD = "pass word 1"


async def test_accounts_search_and_pages(tmp_path: Path, browser: Browser) -> None:
    config = make_config(tmp_path)
    async with running_platform(config, ("gateway", "chat")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as api:
        base = str(api.base_url).rstrip("/")
        # a streamer with a stream (not live) for search to find
        await api.post("/api/users/register", json={
            "username": "caster", "email": "c@example.com", "password": PASSWORD})
        token = (await api.post("/api/users/login", json={
            "login": "caster", "password": PASSWORD})).json()["access_token"]
        r = await api.post("/api/streams/start", json={
            "title": "Speedrun practice", "category": "games", "tags": ["speedrun"]},
            headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        stream_id = r.json()["stream"]["id"]

        def flow() -> None:
            context = new_context(browser)
            try:
                page = open_page(context, f"{base}/register")
                check_page(page, "register")
                page.fill("#username", "viewer1")
                page.fill("#email", "v1@example.com")
                page.fill("#password", PASSWORD)
                page.click("#register-form button[type=submit]")
                page.wait_for_url(f"{base}/")
                page.wait_for_selector("#sign-out")
                ready(page)
                # httpOnly session: nothing for script to steal, nothing in storage
                cookies = page.evaluate("document.cookie")
                assert "ss_access" not in cookies and "ss_refresh" not in cookies
                assert "ss_csrf" in cookies
                assert page.evaluate("localStorage.length + sessionStorage.length") == 0
                check_page(page, "browse")

                goto(page, f"{base}/search?q=speedrun")
                page.wait_for_selector("#results .card-title >> text=Speedrun practice")
                check_page(page, "search")
                page.fill("#q", "nothing-like-this")
                page.click("#search-form button[type=submit]")
                page.wait_for_selector("#search-summary >> text=No streams match.")
                assert "q=nothing-like-this" in page.url

                goto(page, f"{base}/account")
                assert page.input_value("#username") == "viewer1"
                page.fill("#display-name", "Viewer One")
                page.click("#profile-form button[type=submit]")
                page.wait_for_selector("#profile-saved", state="visible")
                check_page(page, "account")
                assert page.text_content("nav") is not None
                assert "Viewer One" in (page.text_content("nav") or "")

                # error states: a stream not started yet, no such stream, session expired
                goto(page, f"{base}/channel/{stream_id}")
                state = page.wait_for_selector("#player-state", state="visible")
                assert "has not started yet" in (state.text_content() or "")
                page.wait_for_selector("#chat-log[data-joined='1']")
                assert page.is_enabled("#chat-input")  # signed in: may chat before live
                check_page(page, "channel-offline")
                goto(page, f"{base}/channel/{'0' * 32}")
                page.wait_for_selector("#stream-title >> text=No such stream")
                # the access cookie lapses (it lives as long as the token): the page
                # refreshes the session with the refresh cookie and carries on
                page.context.clear_cookies(name="ss_access")
                goto(page, f"{base}/account")
                assert page.input_value("#username") == "viewer1"
                names = {c["name"] for c in page.context.cookies()}
                assert {"ss_access", "ss_refresh", "ss_csrf"} <= names
                page.context.clear_cookies()  # the session is gone (or revoked)
                page.fill("#display-name", "Viewer 1")
                page.click("#profile-form button[type=submit]")
                expired = page.wait_for_selector("#profile-error", state="visible")
                assert "session expired" in (expired.text_content() or "").lower()
                sign_in(page, base, "viewer1", PASSWORD)

                page.click("#sign-out")
                page.wait_for_selector("nav >> text=Sign in")
                goto(page, f"{base}/account")  # signed out: sent to sign in first
                page.wait_for_url(re.compile(r"/login\?next=%2Faccount"))
                ready(page)
                page.fill("#login", "viewer1")
                page.fill("#password", "wrong password")
                page.click("#login-form button[type=submit]")
                alert = page.wait_for_selector("#login-error", state="visible")
                assert alert.text_content()
                check_page(page, "login")
                # keyboard only: tab to the password field, type, Enter submits
                page.focus("#login")
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.id") == "password"
                page.keyboard.press("Control+A")
                page.keyboard.type(PASSWORD)
                page.keyboard.press("Enter")
                page.wait_for_url(f"{base}/account")
                ready(page)

                goto(page, f"{base}/no/such/page")
                page.wait_for_selector("h1 >> text=Page not found")
                check_page(page, "notfound")
                goto(page, f"{base}/account")

                # a taken username is a clear error on the form
                other = open_page(new_context_of(page), f"{base}/register")
                other.fill("#username", "viewer1")
                other.fill("#email", "v1b@example.com")
                other.fill("#password", PASSWORD)
                other.click("#register-form button[type=submit]")
                taken = other.wait_for_selector("#register-error", state="visible")
                assert taken.text_content()
                other.context.close()

                page.fill("#delete-password", "wrong password")
                page.click("#delete-form button[type=submit]")
                page.wait_for_selector("#delete-error", state="visible")
                page.fill("#delete-password", PASSWORD)
                page.click("#delete-form button[type=submit]")
                page.wait_for_url(f"{base}/?deleted=1")
                page.wait_for_selector("nav >> text=Sign in")
            finally:
                context.close()

        def new_context_of(page: Any) -> Any:
            return new_context(browser)

        await on_playwright(browser, flow)
        gone = await api.post("/api/users/login", json={"login": "viewer1",
                                                        "password": PASSWORD})
        assert gone.status_code == 401
