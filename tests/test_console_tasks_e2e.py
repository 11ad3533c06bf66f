"""The console's A2A tasks page in a real Chromium: a reply typed in the page completes an
input-required task, and the answer artifact grows chunk by chunk."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from deeployd.services import Services
from tests.agent_support import create_agent, scripted_agent
from tests.browser import screenshot, sign_in
from tests.conftest import Org, RunningApi

ASK = [
    {"toolCalls": [{"name": "ask_user", "arguments": {"question": "Which city?"}}]},
    {"text": "The weather in {{lastToolResult.answer}} is sunny today, enjoy it."},
]


async def test_a_reply_from_the_page_completes_an_input_required_task(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        await create_agent(
            http,
            org,
            scripted_agent(ASK, tools=["ask_user"], token_delay_ms=10, name="weather agent"),
        )
    await sign_in(page, api.url, org.admin_key, view="tasks")
    await page.fill("#task-message", "What's the weather?")
    await page.click("#task-create")

    flow = page.locator("#task-flow")
    await expect(flow).to_have_attribute("data-state", "input-required")
    await expect(page.locator("#task-messages")).to_contain_text("Which city?")
    await expect(page.locator("#task-reply")).to_be_visible()
    await page.fill("#task-reply-text", "Paris")
    await page.click("#task-reply-send")

    await expect(flow).to_have_attribute("data-state", "completed")
    artifact = page.locator("#task-artifacts .artifact").first
    await expect(artifact).to_have_text("The weather in Paris is sunny today, enjoy it.")
    await expect(page.locator("#task-reply")).to_be_hidden()
    await screenshot(page, "a2a-tasks")
