"""The channel page in Chromium: a stream ffmpeg publishes plays in the page (the video's
currentTime advances, the latency readout stays under the LL-HLS target, 2.0 s), the
quality selector pins a rendition, playback records a watch, two signed-in browser
contexts exchange chat over the WebSocket, and the streamer moderates from the chat
panel; axe-core and screenshots as for every page (reports/ui/channel-*.png)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from streamscale.config import CdnConfig, MediaConfig
from streamscale.testing import make_config, running_platform
from streamscale.testing.browser import Browser

from .conftest import start_publisher, wait_for_master
from .web_ui import check_page, new_context, on_playwright, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "pass word 1"
LL_HLS_TARGET_S = 2.0
HELD = "that was a stupid mistake by me"  # the model scores it 0.99 (README, Chat)


async def _account(api: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await api.post("/api/users/register", json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    token = (await api.post("/api/users/login", json={
        "login": name, "password": PASSWORD})).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def _until(browser: Browser, page: Any, expression: str, *,
                 timeout_s: float = 60) -> Any:
    """Poll the page until `expression` is truthy (page.evaluate goes over the DevTools
    protocol; Playwright's wait_for_function would eval in the page, which its CSP
    forbids). The sleep paces the polling; the condition is what is waited on."""
    with trio.fail_after(timeout_s):
        while True:
            value = await on_playwright(browser, lambda: page.evaluate(expression))
            if value:
                return value
            await trio.sleep(0.2)


def _chat_line(page: Any, text: str) -> None:
    page.wait_for_selector(f"#chat-log li[data-state=visible] .text >> text={text}")


async def test_channel_plays_and_chats(tmp_path: Path, browser: Browser) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(
        config, cdn=CdnConfig(edges=()),  # playback straight from the origin
        media=MediaConfig(rtmp_port=0, reconnect_grace_s=1.0, ladder="source,360p,160p",
                          shed_sustain_s=3600.0, restore_after_s=3600.0))
    services = ("gateway", "media", "origin", "chat")
    async with running_platform(config, services) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as api, trio.open_nursery() as nursery:
        base = str(api.base_url).rstrip("/")
        caster = await _account(api, "caster")
        ann = await _account(api, "ann")
        bob = await _account(api, "bob")
        bob_id = (await api.get("/api/users/me", headers=bob)).json()["id"]
        body = (await api.post("/api/streams/start", json={
            "title": "Live from the test", "category": "test"}, headers=caster)).json()
        stream_id, key = body["stream"]["id"], body["stream_key"]
        r = await api.put(f"/api/users/{body['stream']['user_id']}/follow", headers=ann)
        assert r.status_code == 200, r.text
        channel = f"{base}/channel/{stream_id}"
        contexts = await on_playwright(browser, lambda: (new_context(browser),
                                                         new_context(browser)))
        try:
            def sign_in_both() -> tuple[Any, Any]:
                pages = []
                for context, name in zip(contexts, ("ann", "bob"), strict=True):
                    page = context.new_page()
                    sign_in(page, base, name, PASSWORD)  # lands on / (browse)
                    pages.append(page)
                return pages[0], pages[1]

            a, b = await on_playwright(browser, sign_in_both)
            # ann's browse page listens for followed streamers going live (SSE, cookie)
            await on_playwright(browser, lambda: a.wait_for_selector(
                "body[data-live='listening']", state="attached"))
            publisher = await start_publisher(
                nursery, f"{platform.url('media', 'rtmp')}/{key}", 90)

            def live_toast_to_channel() -> str:
                toast = a.wait_for_selector(".toast a", timeout=60_000)
                text = toast.text_content() or ""
                toast.click()
                a.wait_for_url(channel)
                b.goto(channel)
                for page in (a, b):
                    page.wait_for_selector("body[data-ready='1']", state="attached")
                return text

            toast = await on_playwright(browser, live_toast_to_channel)
            assert toast == "caster is live: Live from the test", toast
            await wait_for_master(
                f"{platform.url('origin', 'hls')}/live/{stream_id}/master.m3u8", rungs=3)
            video = "document.getElementById('video')"
            await _until(browser, a, f"{video}.currentTime > 0.5")
            start_s = await on_playwright(browser, lambda: a.evaluate(f"{video}.currentTime"))
            await _until(browser, a, f"{video}.currentTime > {start_s + 1.0}")
            latency = await _until(browser, a, "document.getElementById('latency')"
                                   ".dataset.latencyS")

            def quality_and_chat() -> dict[str, Any]:
                seen: dict[str, Any] = {
                    "current_s": a.evaluate(f"{video}.currentTime"),
                    "latency_s": float(latency),
                    "target_s": a.get_attribute("#target-latency", "data-target-s"),
                    "rendition": a.text_content("#rendition"),
                }
                a.wait_for_selector("#player-state", state="hidden")  # no problem shown
                # the quality selector lists the ladder and pins a rendition
                names = a.eval_on_selector_all("#quality option", "os => os.map(o => o.text)")
                assert len(names) == 4, names  # Auto + three rungs
                lowest, height = a.eval_on_selector_all(
                    "#quality option",
                    "os => [os[os.length - 1].value, os[os.length - 1].dataset.height]")
                assert names[1].startswith("720p") and height == "160", names
                a.select_option("#quality", lowest)
                a.wait_for_selector(f"#rendition[data-height='{height}']")
                # chat between two browser contexts, both ways
                for page in (a, b):
                    page.wait_for_selector("#chat-log[data-joined='1']")
                    page.wait_for_selector("#chat-input:enabled")
                a.fill("#chat-input", "hello from ann")
                a.press("#chat-input", "Enter")
                _chat_line(b, "hello from ann")
                _chat_line(a, "hello from ann")
                b.fill("#chat-input", "hi ann, bob here")
                b.click("#chat-send")
                _chat_line(a, "hi ann, bob here")
                assert a.locator("#chat-log li").count() == 2  # each message once
                b.click("#follow")
                b.wait_for_selector("#follow[aria-pressed=true]")
                # held by the toxicity model: only its author sees it, marked as held
                a.fill("#chat-input", HELD)
                a.press("#chat-input", "Enter")
                a.wait_for_selector(f"#chat-log li[data-state=held]:has-text('{HELD}')")
                a.wait_for_selector("#chat-input:enabled")
                a.fill("#chat-input", "plain words after it")
                a.press("#chat-input", "Enter")
                _chat_line(b, "plain words after it")
                texts = b.eval_on_selector_all("#chat-log li .text",
                                               "ls => ls.map(l => l.textContent)")
                assert HELD not in " ".join(texts), texts
                check_page(a, "channel")
                return seen

            seen = await on_playwright(browser, quality_and_chat)
            # the streamer moderates from the chat panel of their own channel page: the
            # actions are on other people's lines there, and nowhere on ann's or bob's page
            staff_context = await on_playwright(browser, lambda: new_context(browser))
            contexts = (*contexts, staff_context)

            def moderate_from_the_panel() -> None:
                c = staff_context.new_page()
                sign_in(c, base, "caster", PASSWORD)
                c.goto(channel)
                c.wait_for_selector("body[data-ready='1']", state="attached")
                c.wait_for_selector("#chat-log[data-joined='1']")
                c.wait_for_selector("#moderate-link:visible")
                assert a.locator(".mod-actions").count() == 0  # viewers get no actions
                assert a.is_hidden("#moderate-link")
                b.fill("#chat-input", "bob says this now")
                b.press("#chat-input", "Enter")
                line = "#chat-log li[data-state=visible]:has-text('bob says this now')"
                c.wait_for_selector(line)
                bob_line = c.get_attribute(line, "data-message-id")  # before it is removed
                c.click(f"{line} .mod-actions button:has-text('Remove')")
                removed = f"#chat-log li[data-message-id='{bob_line}'][data-state=removed]"
                for page in (a, b, c):
                    page.wait_for_selector(removed)
                b.wait_for_selector("#chat-input:enabled")
                b.fill("#chat-input", "bob again")
                b.press("#chat-input", "Enter")
                again = "#chat-log li[data-state=visible]:has-text('bob again')"
                c.wait_for_selector(again)
                check_page(c, "channel-moderator")
                c.click(f"{again} .mod-actions button:has-text('Ban')")
                c.wait_for_selector("#mod-status:has-text('Banned bob')", state="attached")

            await on_playwright(browser, moderate_from_the_panel)
            bans = (await api.get(f"/api/channels/{body['stream']['user_id']}/bans",
                                  headers=caster)).json()["items"]
            assert [ban["user_id"] for ban in bans] == [bob_id]

            def banned() -> str:
                b.wait_for_selector("#chat-log[data-closed=banned]")
                assert b.is_disabled("#chat-input")
                return b.text_content("#chat-status") or ""

            assert "banned" in await on_playwright(browser, banned)

            def too_fast_then_browse() -> str:
                # past chat.user_rate_per_10s (10) the page says to slow down
                for i in range(12):
                    a.wait_for_selector("#chat-input:enabled")
                    a.fill("#chat-input", f"message number {i}")
                    a.press("#chat-input", "Enter")
                    if "too fast" in (a.text_content("#chat-status") or ""):
                        break
                status = a.wait_for_selector("#chat-status:has-text('too fast')")
                said = status.text_content() or ""
                # ann's browse page: the followed streamer in "following, live now"
                a.goto(f"{base}/")
                a.wait_for_selector("body[data-ready='1']", state="attached")
                a.wait_for_selector("#following-list >> text=Live from the test")
                a.wait_for_selector("#live-list >> text=Live from the test")
                a.wait_for_selector("#recs-list >> text=Live from the test")
                check_page(a, "browse-signed-in")
                return said

            assert "too fast" in await on_playwright(browser, too_fast_then_browse)

            # the streamer stops: bob's page says the stream ended
            publisher.terminate()
            r = await api.post(f"/api/streams/{stream_id}/stop", headers=caster)
            assert r.status_code in (200, 409), r.text
            ended = await on_playwright(browser, lambda: b.wait_for_selector(
                "#player-state:has-text('ended')", timeout=60_000).text_content())
            assert ended == "This stream has ended."
        finally:
            await on_playwright(browser, lambda: [c.close() for c in contexts])
        print(f"channel page: currentTime {seen['current_s']:.1f} s, hls.js latency "
              f"{seen['latency_s']:.2f} s (target {seen['target_s']} s), "
              f"{seen['rendition']}")
        # the LL-HLS target: glass-to-glass p95 2.0 s (bench/glass_to_glass.py, DESIGN.md);
        # the readout (hls.js latency) leaves out capture -> ingest, so it must be under it
        assert seen["latency_s"] <= LL_HLS_TARGET_S, seen
        history = (await api.get("/api/me/history", headers=ann)).json()
        assert [w["stream_id"] for w in history["items"]] == [stream_id]
        nursery.cancel_scope.cancel()
