"""A real player for tests and benches: hls.js in Debian's headless Chromium via Playwright.

`open_browser()` starts Chromium (always the system's, by `executable_path`: a browser
that Playwright downloads cannot be had here) and serves `streamscale/web/` on a free
127.0.0.1 port; `Browser.open_player(url)` opens `web/player_probe.html?src=<url>`, which
plays the URL with the vendored hls.js in its default configuration and keeps what
happens on `window.probe`; `Player.state()` reads it.

Playwright's sync API is bound to the thread that started it and its async API is
asyncio, which does not mix with trio: one dedicated thread owns Playwright and runs
every call, and trio waits for each call in a worker thread.

Needs the `dev` extra (playwright) and Chromium at /usr/bin/chromium (`./dev test`
installs both), or STREAMSCALE_CHROMIUM pointing at another Chromium.
"""

from __future__ import annotations

import concurrent.futures
import functools
import http.server
import json
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import trio

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
CHROMIUM = os.environ.get("STREAMSCALE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ("--autoplay-policy=no-user-gesture-required", "--mute-audio",
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding")

T = TypeVar("T")


@dataclass(frozen=True)
class PlayerState:
    """One reading of the page's `probe.snapshot()` (times in seconds)."""

    now_ms: float  # the page's Date.now()
    current_time_s: float
    paused: bool
    ended: bool
    ready_state: int
    buffered: list[tuple[float, float]]
    level: int  # hls.currentLevel (-1 before the first)
    levels: list[dict[str, Any]]  # height, bitrate, url of each level hls.js knows
    level_switches: list[int]
    latency_s: float | None  # hls.latency: behind the live edge
    target_latency_s: float | None
    pdt_latency_s: float | None  # Date.now() - PROGRAM-DATE-TIME of the playing position
    waiting: int
    stalled: int
    buffer_stalls: int
    errors: list[dict[str, Any]]
    fatal: str | None
    presented: int  # frames presented (requestVideoFrameCallback)
    media_time_s: float | None  # media time of the last presented frame
    decoded_frames: int
    dropped_frames: int
    decode_failures: int  # with barcode=True: presented frames whose barcode did not read
    marks: dict[str, list[Any]]  # join steps: name -> [epoch ms, hls.latency, currentTime]

    @classmethod
    def from_snapshot(cls, s: dict[str, Any]) -> PlayerState:
        return cls(
            now_ms=s["now"], current_time_s=s["currentTime"], paused=s["paused"],
            ended=s["ended"], ready_state=s["readyState"],
            buffered=[(a, b) for a, b in s["buffered"]], level=s["level"],
            levels=s["levels"], level_switches=[x["level"] for x in s["levelSwitches"]],
            latency_s=s["latency"], target_latency_s=s["targetLatency"],
            pdt_latency_s=s["pdtLatency"], waiting=s["waiting"], stalled=s["stalled"],
            buffer_stalls=s["bufferStalls"], errors=s["errors"], fatal=s["fatal"],
            presented=s["presented"], media_time_s=s["mediaTime"],
            decoded_frames=s["decodedFrames"], dropped_frames=s["droppedFrames"],
            decode_failures=s["decodeFailures"], marks=s["marks"],
        )

    @property
    def level_height(self) -> int | None:
        if 0 <= self.level < len(self.levels):
            height: int = self.levels[self.level]["height"]
            return height
        return None


class _Owner:
    """The one thread that owns Playwright; runs submitted calls in order."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]
                                       | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="playwright", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._calls.get()) is not None:
            fn, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the waiting trio task
                    future.set_exception(exc)

    async def call(self, fn: Callable[[], T]) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((fn, future))
        return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)

    def stop(self) -> None:
        self._calls.put(None)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_web() -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(WEB_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
    return server


class Player:
    """One page playing one URL."""

    def __init__(self, owner: _Owner, page: Any) -> None:
        self._owner = owner
        self._page = page

    async def evaluate(self, expression: str) -> Any:
        page = self._page
        return await self._owner.call(lambda: page.evaluate(expression))

    async def state(self) -> PlayerState:
        return PlayerState.from_snapshot(await self.evaluate("probe.snapshot()"))

    async def take_samples(self) -> list[list[float]]:
        """With barcode=True: [captured ms, displayed ms, level, hls.latency, media time]
        per presented frame since the last call (epoch ms)."""
        samples: list[list[float]] = await self.evaluate("probe.takeSamples()")
        return samples

    async def close(self) -> None:
        page = self._page
        await self._owner.call(page.close)


class Browser:
    def __init__(self, owner: _Owner, browser: Any, web_url: str) -> None:
        self._owner = owner
        self._browser = browser
        self.web_url = web_url

    def page_url(self, src: str, *, barcode: bool = False, debug: bool = False,
                 config: dict[str, Any] | None = None) -> str:
        query = {"src": src, **({"barcode": "1"} if barcode else {}),
                 **({"debug": "1"} if debug else {}),
                 **({"config": json.dumps(config)} if config else {})}
        return f"{self.web_url}/player_probe.html?{urlencode(query)}"

    async def open_player(self, src: str, *, barcode: bool = False, debug: bool = False,
                          config: dict[str, Any] | None = None) -> Player:
        """A new page playing `src` (a master or media playlist URL) with hls.js in its
        default configuration; `debug` turns on hls.js's logs (to this module's logger at
        DEBUG); `config` overrides hls.js settings (an experiment, not what viewers get)."""
        url = self.page_url(src, barcode=barcode, debug=debug, config=config)
        browser = self._browser

        def open_page() -> Any:
            page = browser.new_page(viewport={"width": 660, "height": 380})
            page.on("console", lambda m: log.debug("page console: %s", m.text))
            page.goto(url)
            return page

        return Player(self._owner, await self._owner.call(open_page))


@asynccontextmanager
async def open_browser(*, headless: bool = True) -> AsyncIterator[Browser]:
    """Headless Chromium and the web directory on a free port, until the block ends."""
    from playwright.sync_api import sync_playwright  # the dev extra

    owner = _Owner()
    server = _serve_web()
    started: list[Any] = []

    def start() -> Any:
        if not os.path.exists(CHROMIUM):
            raise RuntimeError(f"no Chromium at {CHROMIUM}: apt-get install chromium "
                               "(./dev test does), or set STREAMSCALE_CHROMIUM")
        pw = sync_playwright().start()
        started.append(pw)
        return pw.chromium.launch(executable_path=CHROMIUM, headless=headless,
                                  args=list(CHROMIUM_ARGS))

    def stop() -> None:
        try:
            if browser is not None:
                browser.close()
        finally:
            if started:
                started[0].stop()

    browser: Any = None
    try:
        browser = await owner.call(start)
        host, port = server.server_address[:2]
        yield Browser(owner, browser, f"http://{host!s}:{port}")
    finally:
        with trio.CancelScope(shield=True):
            try:
                await owner.call(stop)
            finally:
                owner.stop()
                await trio.to_thread.run_sync(server.shutdown)
                server.server_close()
