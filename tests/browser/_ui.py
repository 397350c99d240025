"""Driving the web UI's pages (served by the platform's gateway) in Chromium.

`streamscale.testing.browser` owns Playwright on one thread; `UiPage` runs each call on
that thread and waits for it from trio, so a test reads and clicks while the platform
(in the same process, on trio) serves the page. Each page gets its own browser context,
so two users' cookies never mix. Readings of the page's progress are polled with a short
pause between them (pacing, not synchronisation).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import trio
from playwright.sync_api import Error as PlaywrightError

from streamscale.testing.browser import Browser

T = TypeVar("T")
POLL_S = 0.25
REPORTS = Path(__file__).resolve().parents[2] / "reports" / "ui"
AXE = Path(__file__).resolve().parents[1] / "js" / "node_modules" / "axe-core" / "axe.min.js"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class UiPage:
    """One page in its own browser context."""

    def __init__(self, browser: Browser, context: Any, page: Any, base_url: str) -> None:
        self._browser = browser
        self.context = context
        self.page = page
        self.base_url = base_url
        self.console: list[str] = []

    async def call(self, fn: Callable[[], T]) -> T:
        return await self._browser._owner.call(fn)

    async def goto(self, path: str) -> None:
        page = self.page
        await self.call(lambda: page.goto(self.base_url + path, wait_until="load"))

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        page = self.page
        return await self.call(lambda: page.evaluate(expression, arg))

    async def fill(self, selector: str, value: str) -> None:
        page = self.page
        await self.call(lambda: page.fill(selector, value))

    async def click(self, selector: str) -> None:
        page = self.page
        await self.call(lambda: page.click(selector))

    async def press(self, selector: str, key: str) -> None:
        page = self.page
        await self.call(lambda: page.press(selector, key))

    async def text(self, selector: str) -> str:
        value: str = await self.evaluate(
            "s => { const e = document.querySelector(s); return e ? e.textContent : ''; }",
            selector)
        return value

    async def value(self, selector: str) -> str:
        value: str = await self.evaluate(
            "s => { const e = document.querySelector(s); return e ? e.value : ''; }", selector)
        return value

    async def visible(self, selector: str) -> bool:
        page = self.page
        shown: bool = await self.call(lambda: page.is_visible(selector))
        return shown

    async def until(self, expression: str, arg: Any = None, *, timeout_s: float = 30,
                    what: str = "") -> Any:
        """Poll a page expression until it is truthy; its value."""
        last: Any = None
        try:
            with trio.fail_after(timeout_s):
                while True:
                    try:
                        last = await self.evaluate(expression, arg)
                    except PlaywrightError as exc:  # a navigation: read the next page
                        if "context was destroyed" not in str(exc):
                            raise
                        last = None
                    if last:
                        return last
                    await trio.sleep(POLL_S)
        except trio.TooSlowError:
            raise AssertionError(f"page never showed {what or expression} "
                                 f"(last: {last!r}; console: {self.console[-10:]})") from None

    async def until_visible(self, selector: str, *, timeout_s: float = 30) -> None:
        await self.until("s => { const e = document.querySelector(s); "
                         "return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; }",
                         selector, timeout_s=timeout_s, what=f"{selector} visible")

    async def screenshots(self, name: str) -> list[Path]:
        """Full-page screenshots at 1280x800 and 390x844: reports/ui/<name>-laptop.png and
        <name>-phone.png (the other pages' names)."""
        REPORTS.mkdir(parents=True, exist_ok=True)
        page = self.page
        paths = []
        for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
            path = REPORTS / f"{name}-{label}.png"

            def shoot(size: dict[str, int] = size, path: Path = path) -> None:
                page.set_viewport_size(size)
                page.screenshot(path=str(path), full_page=True)

            await self.call(shoot)
            paths.append(path)
        await self.call(lambda: page.set_viewport_size(LAPTOP))
        return paths

    async def overflow_at_phone_width(self) -> int:
        """How many CSS pixels the page is wider than a 390 px phone screen (0: none,
        nothing to scroll sideways; a wide table scrolls inside its own region)."""
        page = self.page

        def measure() -> int:
            page.set_viewport_size(PHONE)
            try:
                wider: int = page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth")
                return wider
            finally:
                page.set_viewport_size(LAPTOP)

        return await self.call(measure)

    async def axe_violations(self) -> list[dict[str, Any]]:
        """axe-core run in the page (injected as a script file, not inline: the CSP holds
        for the page's own scripts; Playwright's add_script_tag with a path adds the
        source as content, which the CSP would refuse, so it is evaluated instead)."""
        source = AXE.read_text()
        page = self.page

        def run() -> Any:
            page.evaluate(source + "\n;0")
            return page.evaluate(
                "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
                " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
                " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})); }")

        found: list[dict[str, Any]] = await self.call(run)
        return found

    async def serious_violations(self) -> list[dict[str, Any]]:
        return [v for v in await self.axe_violations()
                if v["impact"] in ("serious", "critical")]

    def page_errors(self) -> list[str]:
        """Uncaught exceptions in the page's scripts so far."""
        return [line for line in self.console if line.startswith("pageerror")]

    async def close(self) -> None:
        """Close the context; fails the test if the page's scripts threw."""
        assert not self.page_errors(), self.page_errors()
        context = self.context
        await self.call(context.close)


async def open_page(browser: Browser, base_url: str) -> UiPage:
    """A fresh context (no cookies) and page at laptop size."""
    pw_browser = browser._browser
    holder: list[UiPage] = []

    def make() -> None:
        context = pw_browser.new_context(viewport=LAPTOP, base_url=base_url)
        page = context.new_page()
        ui = UiPage(browser, context, page, base_url)
        page.on("console", lambda m: ui.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: ui.console.append(f"pageerror: {e}"))
        holder.append(ui)

    await browser._owner.call(make)
    return holder[0]


async def sign_in(ui: UiPage, login: str, password: str, *, next_path: str) -> None:
    """Through the login page; lands on `next_path`."""
    await ui.goto(f"/login?next={quote(next_path, safe='/')}")
    await ui.until_visible("#login")
    await ui.fill("#login", login)
    await ui.fill("#password", password)
    await ui.click("#login-form button[type=submit]")
    await ui.until("p => location.pathname + location.search === p", next_path,
                   what=f"the page {next_path}")
    page = ui.page
    await ui.call(lambda: page.wait_for_load_state("load"))


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
