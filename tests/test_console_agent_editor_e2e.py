"""The console's Agents page in a real Chromium: create an agent from the form (tools, which of
them need approval, the approval timeout), edit it, and see the API's 422 at the field it names."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from tests.agent_support import auth
from tests.browser import screenshot, sign_in
from tests.conftest import Org, RunningApi


async def stored_agents(api: RunningApi, org: Org) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=api.url) as http:
        response = await http.get("/api/agents", headers=auth(org))
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_an_agent_is_created_and_edited_from_the_form(
    api: RunningApi, org: Org, page: Page
) -> None:
    await sign_in(page, api.url, org.admin_key, view="agents")
    await expect(page.locator("#ag-rows")).to_contain_text("No agents yet")
    await page.fill("#ag-name", "Support")
    await page.select_option("#ag-provider", "openai")
    await page.fill("#ag-model", "gpt-4o-mini")
    await page.fill("#ag-prompt", "You answer support questions briefly.")
    await page.check("[data-tool=calculator]")
    await page.check("[data-tool=current_time]")
    await page.check("[data-approval=calculator]")
    await page.fill("#ag-approval-timeout", "30")
    await page.click("#ag-save")
    await expect(page.locator("#ag-result")).to_contain_text("Created")

    [agent] = await stored_agents(api, org)
    assert agent["name"] == "Support" and agent["model"] == "gpt-4o-mini"
    assert agent["systemPrompt"] == "You answer support questions briefly."
    assert sorted(agent["tools"]) == ["calculator", "current_time"]  # type: ignore[arg-type]
    assert agent["approvalRequired"] == ["calculator"]
    assert agent["approvalTimeoutMs"] == 30_000
    row = page.locator(f"#ag-rows tr[data-agent-id='{agent['id']}']")
    await expect(row).to_contain_text("openai/gpt-4o-mini")
    await expect(row).to_contain_text("calculator · 30 s")

    # Edit: another model, calculator dropped (its approval goes with it), and a raw key,
    # which the API refuses at the apiKey field.
    await row.locator("button[data-action=edit]").click()
    await expect(page.locator("#ag-form")).to_have_attribute("data-agent-id", str(agent["id"]))
    await page.fill("#ag-model", "gpt-4.1-mini")
    await page.uncheck("[data-tool=calculator]")
    await expect(page.locator("[data-approval=calculator]")).to_be_disabled()
    await page.check("[data-approval=current_time]")
    await page.click("#ag-form summary")
    await page.fill("#ag-api-key", "sk-a-raw-key")
    await page.click("#ag-save")
    await expect(page.locator("#ag-api-key")).to_have_class("invalid")
    await expect(page.locator("label.field:has(#ag-api-key) .field-error")).to_contain_text(
        "${secrets.NAME} reference"
    )
    await screenshot(page, "agents")

    await page.fill("#ag-api-key", "${secrets.OPENAI_API_KEY}")
    await page.click("#ag-save")
    await expect(page.locator("#ag-result")).to_have_text("Saved.")
    await expect(page.locator("#ag-api-key")).not_to_have_class("invalid")
    [edited] = await stored_agents(api, org)
    assert edited["id"] == agent["id"] and edited["model"] == "gpt-4.1-mini"
    assert edited["tools"] == ["current_time"]
    assert edited["approvalRequired"] == ["current_time"]
    assert edited["apiKey"] == "${secrets.OPENAI_API_KEY}"
    assert edited["approvalTimeoutMs"] == 30_000
