"""The console at 360 px wide in a real Chromium: no page, header included, is wider than the
screen (every nav link stays on screen; wide tables scroll inside their card)."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from deeployd.services import Services
from tests.agent_support import create_agent, create_conversation, scripted_agent, send, wait_status
from tests.browser import screenshot, sign_in
from tests.conftest import Org, RunningApi

WIDTH = 360
PAGES = {
    "command-center": "#cc-status",
    "playground": "#pg-input",
    "agents": "#ag-form",
    "pipelines": "#pl-form",
    "tasks": "#task-message",
    "voice": "#voice-text",
}
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const sticking = [...document.querySelectorAll('header.topbar, header.topbar > *, header.topbar > * > *')]
    .filter((node) => node.getBoundingClientRect().right > width + 0.5)
    .map((node) => node.id || node.className || node.tagName);
  return { wider: document.documentElement.scrollWidth - width, sticking };
}"""


async def test_every_page_fits_a_360_px_screen(
    api: RunningApi, org: Org, worker: Services, browser: Browser
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http, org, scripted_agent([{"text": "Small screens work too."}], name="pocket agent")
        )
        run_id = await send(http, org, await create_conversation(http, org, agent["id"]), "hi")
        await wait_status(http, org, run_id, {"completed"})

    context = await browser.new_context(viewport={"width": WIDTH, "height": 780})
    page = await context.new_page()
    try:
        await sign_in(page, api.url, org.admin_key, view="command-center")
        for view, ready in PAGES.items():
            await page.goto(f"{api.url}/console/#/{view}")
            await expect(page.locator(ready)).to_be_visible()
            measured = await page.evaluate(OVERFLOW)
            assert measured == {"wider": 0, "sticking": []}, view
        await page.goto(f"{api.url}/console/#/command-center")
        await expect(page.locator(f"#cc-recent tr[data-run-id='{run_id}']")).to_have_count(1)
        await expect(page.locator("#cc-log details[data-type='run:completed']")).to_have_count(1)
        await screenshot(page, "command-center-360")
    finally:
        await context.close()
