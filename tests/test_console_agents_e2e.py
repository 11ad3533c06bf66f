"""The console in a real Chromium: playground streaming and approvals."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from deeployd.services import Services
from tests.agent_support import create_agent, scripted_agent
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


async def test_playground_closes_a_run_stream_after_done_instead_of_reconnecting(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        await create_agent(
            http, org, scripted_agent([{"text": "Short answer."}], name="one-shot agent")
        )
    opened: list[str] = []
    page.on("request", lambda r: opened.append(r.url) if "/stream" in r.url else None)
    await sign_in(page, api.url, org.admin_key, view="playground")
    await page.fill("#pg-input", "Hello")
    await page.click("#pg-send")
    answer = page.locator("[data-role=answer]").last
    await expect(answer).to_have_attribute("data-done", "true")
    # A reconnect would come after the first backoff step (1 s); give it three.
    await page.wait_for_timeout(3000)
    run_streams = [url for url in opened if "/api/runs/" in url]
    assert len(run_streams) == 1, run_streams
