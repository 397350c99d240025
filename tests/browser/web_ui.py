"""Driving the web UI's pages in Chromium: sync Playwright code run on the thread that
owns Playwright (streamscale.testing.browser), axe-core injected into every page, and
screenshots at laptop and phone width into reports/ui/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from streamscale.testing.browser import Browser

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "reports" / "ui"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
T = TypeVar("T")


async def on_playwright(browser: Browser, fn: Callable[[], T]) -> T:
    """Run sync Playwright code on the thread that owns Playwright."""
    return await browser._owner.call(fn)


def new_context(browser: Browser) -> Any:
    """A fresh browser profile (own cookies) at laptop size, axe-core in every page.
    axe goes in as an init script (DevTools protocol), which the pages' CSP does not
    govern; the pages' own script stays held to `script-src 'self'`."""
    assert AXE.exists(), f"{AXE} missing: run `npm ci` in tests/js (./dev test does)"
    context = browser._browser.new_context(viewport=LAPTOP)
    context.add_init_script(path=str(AXE))
    context.set_default_timeout(30_000)
    context.on("page", _watch)
    return context


def _watch(page: Any) -> None:
    """Keep the page's console errors and uncaught exceptions (CSP refusals among them)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.csp_errors = errors  # read by assert_no_csp_violation


def open_page(context: Any, url: str) -> Any:
    page = context.new_page()
    goto(page, url)
    return page


def goto(page: Any, url: str) -> None:
    page.goto(url)
    ready(page)


def ready(page: Any) -> None:
    """The page's script finished its first render (it sets body[data-ready])."""
    page.wait_for_selector("body[data-ready='1']", state="attached")


def assert_no_csp_violation(page: Any) -> None:
    bad = [e for e in page.csp_errors if "Content Security Policy" in e]
    assert not bad, bad


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    found: list[dict[str, Any]] = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    return [v for v in found if v["impact"] in {"serious", "critical"}]


def check_page(page: Any, name: str) -> None:
    """No serious accessibility violation at laptop or phone width; a screenshot of each
    (reports/ui/<name>-laptop.png, <name>-phone.png)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        violations = axe_violations(page)
        assert not violations, (name, label, violations)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(LAPTOP)
    assert_no_csp_violation(page)


def sign_in(page: Any, base: str, login: str, password: str) -> None:
    goto(page, f"{base}/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#sign-out")
    ready(page)
