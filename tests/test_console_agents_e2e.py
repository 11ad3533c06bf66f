"""The console in a real Chromium: playground streaming and approvals, and the live Command Center."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from deeployd.services import Services
from tests.agent_support import auth, create_agent, create_conversation, scripted_agent
from tests.browser import screenshot, sign_in
from tests.conftest import Org, RunningApi

ANSWER = "Streaming works: every word of this answer arrives as its own token."


async def test_playground_streams_tokens_and_an_approval_click_resumes_the_run(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        await create_agent(
            http,
            org,
            scripted_agent(
                [
                    {
                        "text": ANSWER,
                        "toolCalls": [{"name": "current_time", "arguments": {"timezone": "UTC"}}],
                    },
                    {"text": "Approved and done."},
                ],
                tools=["current_time"],
                approval_required=["current_time"],
                token_delay_ms=20,
                name="playground agent",
            ),
        )
    await sign_in(page, api.url, org.admin_key, view="playground")
    await page.fill("#pg-input", "Hello there")
    await page.click("#pg-send")

    answer = page.locator("[data-role=answer]").last
    # Tokens arrive one by one: the text is seen partially before it is complete.
    await expect(answer).to_contain_text("Streaming works")
    await expect(answer).to_contain_text(ANSWER)
    approve = page.locator("[data-approval] button.approve")
    await expect(approve).to_be_visible()
    await screenshot(page, "playground")
    await approve.click()
    await expect(answer).to_contain_text("Approved and done.")
    await expect(answer).to_have_attribute("data-done", "true")
    await expect(page.locator("#pg-status")).to_contain_text("done")


async def test_command_center_shows_a_run_started_through_the_api(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    await sign_in(page, api.url, org.admin_key, view="command-center")
    await expect(page.locator("#cc-status")).to_have_text("open")
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(
                [{"text": "Counting tokens for the Command Center."}], token_delay_ms=30
            ),
        )
        conversation = await create_conversation(http, org, agent["id"])
        started = await http.post(
            f"/api/conversations/{conversation}/messages",
            json={"content": "go"},
            headers=auth(org),
        )
    run_id = started.json()["runId"]
    row = page.locator(f"tr[data-run-id='{run_id}']")
    await expect(row).to_be_visible(timeout=5000)
    await expect(row.locator(".badge")).to_have_text("completed", timeout=20000)
    await expect(page.locator("#cc-log")).to_contain_text("run:completed")
    await screenshot(page, "command-center")
