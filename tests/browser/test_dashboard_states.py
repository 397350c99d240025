"""The creator dashboard's other states, and web/charts.js on fixed series, in Chromium on a
platform with the gateway alone (no media: nothing goes live here).

- signed out: the page says to sign in and links the login page back to /dashboard;
- a created stream that no encoder feeds: "Offline: start your encoder ..."; ended from
  the page, it says so and cannot have its key rotated;
- a session that ended under the page (cookies cleared): the create form says to sign in
  again, in words, instead of failing silently;
- the charts module, imported in the page (the CSP allows same-origin modules): axis
  bounds, the summary in <desc>, an empty series, a single point, bars.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from streamscale.testing import RunningPlatform, make_config, running_platform
from streamscale.testing.browser import Browser
from tests.services.helpers import register

from ._ui import open_page, sign_in

pytestmark = [pytest.mark.browser]

PASSWORD = "correct horse 1"

CHARTS = """async () => {
  const m = await import('/static/charts.js');
  const box = document.createElement('div');
  document.body.append(box);
  const at = (s) => new Date(Date.UTC(2026, 11, 4, 18, 0, s)).toISOString();
  const items = [{at: at(0), n: 3}, {at: at(10), n: 7}, {at: at(5), n: 4}];
  const points = m.series(items, 'n');
  const out = {};
  out.order = points.map(p => p.v);
  out.summary = m.drawChart(box, points, {label: 'Viewers', unit: 'viewers'});
  out.desc = box.querySelector('desc').textContent;
  out.title = box.querySelector('title').textContent;
  out.role = box.querySelector('svg').getAttribute('role');
  out.labels = [...box.querySelectorAll('text')].map(t => t.textContent);
  out.segments = box.querySelector('path.chart-line').getAttribute('d').split(' ').length;
  out.empty = m.drawChart(box, [], {label: 'Chat', unit: 'messages/min'});
  out.emptyText = box.querySelector('.chart-empty').textContent;
  out.single = m.drawChart(box, m.series([{at: at(0), n: 2}], 'n'), {label: 'B', unit: 'kbps'});
  out.singleLine = !!box.querySelector('path.chart-line');
  m.drawChart(box, points, {label: 'Chat', unit: 'messages/min', kind: 'bars'});
  out.bars = box.querySelectorAll('rect.chart-bar').length;
  out.nice = [0, 0.3, 1, 7, 11, 2400, 3017].map(m.niceMax);
  return out;
}"""


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[RunningPlatform]:
    async with running_platform(make_config(tmp_path), ("gateway",)) as running:
        yield running


async def test_dashboard_states_and_charts(platform: RunningPlatform,
                                           browser: Browser) -> None:
    base = platform.api_url.removesuffix("/api")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        await register(api, "caster", PASSWORD)
    ui = await open_page(browser, base)

    await ui.goto("/dashboard")
    await ui.until_visible("#signed-out")
    assert not await ui.visible("#dash-body")
    assert await ui.evaluate("document.querySelector('#signin-link').getAttribute('href')") \
        == "/login?next=%2Fdashboard"
    assert not await ui.serious_violations(), "axe: signed out"

    charts = await ui.evaluate(CHARTS)
    assert charts["order"] == [3, 4, 7]  # sorted by time
    assert charts["title"] == "Viewers" and charts["role"] == "img"
    assert charts["desc"] == charts["summary"]
    assert "latest 7, highest 7 (viewers; 3 points)." in charts["summary"]
    assert charts["labels"][:3] == ["0", "5", "10"]  # y axis: 0, half, the nice max
    assert charts["segments"] == 3
    assert charts["empty"] == "Chat: no data yet." and charts["emptyText"] == "No data yet"
    assert "latest 2, highest 2 (kbps; 1 point)." in charts["single"] and charts["singleLine"]
    assert charts["bars"] == 3
    assert charts["nice"] == [1, 0.5, 1, 10, 20, 2500, 5000]

    await sign_in(ui, "caster", PASSWORD, next_path="/dashboard")
    await ui.until_visible("#create-form")
    await ui.fill("#title", "Nobody home")
    await ui.fill("#category", "Talk")
    await ui.click("#create-button")
    await ui.until_visible("#key-panel")
    await ui.until("document.querySelector('#health-note').textContent.startsWith('Offline')",
                   what="the offline note")
    assert await ui.text("#stream-state") == "Waiting for your encoder"
    await ui.click("#stop-button")
    await ui.until("document.querySelector('#stream-state').textContent === 'Ended'",
                   what="the stream ended")
    await ui.until("document.querySelector('#health-note').textContent"
                   " === 'The stream has ended.'", what="the ended note")
    assert await ui.evaluate("document.querySelector('#rotate-button').disabled")
    assert not await ui.visible("#dash-error")

    # the session ends under the page: the next action says so
    await ui.call(ui.context.clear_cookies)
    await ui.fill("#title", "Second")
    await ui.fill("#category", "Talk")
    await ui.click("#create-button")
    await ui.until_visible("#create-error")
    assert "Sign in" in await ui.text("#create-error"), await ui.text("#create-error")
    await ui.close()
