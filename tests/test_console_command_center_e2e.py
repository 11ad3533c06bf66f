"""The Command Center in a real Chromium: the events pane opens on recent history and continues
live with no gap and no duplicate, ended runs move from "Live runs" to "Recent", events read as
one summarised row each (JSON on expand), and alerts keep their triggered/resolved history."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    scripted_agent,
    send,
    wait_status,
)
from tests.browser import CuttableProxy, screenshot, sign_in
from tests.conftest import Org, RunningApi

TOOL_SCRIPT = [
    {
        "text": "Let me look at the clock.",
        "toolCalls": [{"name": "current_time", "arguments": {"timezone": "UTC"}}],
    },
    {"text": "It is later than you think."},
]


async def org_event_ids(http: httpx.AsyncClient, org: Org) -> list[int]:
    response = await http.get(
        "/api/events", params={"streams": f"org:{org.id}", "limit": 1000}, headers=auth(org)
    )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def start_slow_run(http: httpx.AsyncClient, org: Org, text: str, delay_ms: int) -> str:
    """A run that streams `text` slowly, so it stays live for a while; returns its id."""
    agent = await create_agent(
        http, org, scripted_agent([{"text": text}], token_delay_ms=delay_ms, name="slow agent")
    )
    return await send(http, org, await create_conversation(http, org, agent["id"]), "go")


async def test_events_pane_opens_on_history_and_ended_runs_move_to_recent(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http, org, scripted_agent(TOOL_SCRIPT, tools=["current_time"], name="clock agent")
        )
        conversation = await create_conversation(http, org, agent["id"])
        earlier = await send(http, org, conversation, "what time is it?")
        await wait_status(http, org, earlier, {"completed"})

        await sign_in(page, api.url, org.admin_key, view="command-center")
        await expect(page.locator("#cc-status")).to_have_text("open")
        log = page.locator("#cc-log")
        # The run that ended before the page opened is in the pane, read from history…
        finished = log.locator(f"details[data-type='run:completed']:has(code[title='{earlier}'])")
        await expect(finished).to_have_count(1)
        await expect(finished.locator(".esum")).to_contain_text("tokens")
        # …and under "Recent", not under "Live runs".
        await expect(page.locator(f"#cc-recent tr[data-run-id='{earlier}'] .badge")).to_have_text(
            "completed"
        )
        await expect(page.locator(f"#cc-runs tr[data-run-id='{earlier}']")).to_have_count(0)

        # A new run shows live while it runs, then moves to "Recent" when it ends.
        later = await start_slow_run(
            http, org, "Counting slowly for the Command Center, one token at a time.", 250
        )
        live_row = page.locator(f"#cc-runs tr[data-run-id='{later}']")
        await expect(live_row.locator(".badge")).to_have_text("running", timeout=10000)
        await wait_status(http, org, later, {"completed"})
        await expect(live_row).to_have_count(0)
        await expect(page.locator(f"#cc-recent tr[data-run-id='{later}'] .badge")).to_have_text(
            "completed"
        )

        # One readable row per event: the tool call is summarised, its JSON shown on expand.
        tool = log.locator("details[data-type='run:tool_started']").first
        await expect(tool.locator(".esum")).to_have_text('current_time(timezone: "UTC")')
        await expect(tool.locator(".event-json")).to_be_hidden()
        await tool.locator("summary").click()
        await expect(tool.locator(".event-json")).to_contain_text('"toolCallId"')

        # History then live: exactly the organisation's stored events, none missing, none twice.
        last = log.locator(f"details[data-type='run:completed']:has(code[title='{later}'])")
        await expect(last).to_have_count(1)  # the run's last event has arrived
        stored = await org_event_ids(http, org)
        rows = log.locator("details[data-event-id]")
        await expect(rows).to_have_count(len(stored))
        shown = [
            int(i) for i in await rows.evaluate_all("rows => rows.map(r => r.dataset.eventId)")
        ]
        assert shown == sorted(stored, reverse=True)


async def test_alerts_panel_keeps_triggered_and_resolved_alerts(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        rule = await http.post(
            "/api/command-center/alert-rules",
            json={"name": "any tokens", "metric": "run_tokens", "comparator": "gt", "threshold": 0},
            headers=auth(org),
        )
        assert rule.status_code == 201, rule.text
        await sign_in(page, api.url, org.admin_key, view="command-center")
        await expect(page.locator("#cc-status")).to_have_text("open")
        await expect(page.locator("#cc-alerts")).to_contain_text("No alerts yet")

        agent = await create_agent(
            http, org, scripted_agent([{"text": "Spending a few tokens."}], name="spender")
        )
        conversation = await create_conversation(http, org, agent["id"])
        run_id = await send(http, org, conversation, "spend")
        alert = page.locator("#cc-alerts .alert").first
        await expect(alert).to_have_attribute("data-status", "triggered", timeout=20000)
        await expect(alert).to_contain_text("any tokens")

        # Raising the threshold resolves the alert: the panel shows it resolved, live…
        changed = await http.patch(
            f"/api/command-center/alert-rules/{rule.json()['id']}",
            json={"threshold": 1_000_000},
            headers=auth(org),
        )
        assert changed.status_code == 200, changed.text
        await expect(alert).to_have_attribute("data-status", "resolved")
        await expect(alert).to_contain_text("resolved")
        await expect(page.locator("#cc-log details[data-type='alert:resolved']")).to_have_count(1)

        # …and still after a reload, with when it triggered and when it resolved.
        await page.reload()
        await expect(page.locator("#cc-status")).to_have_text("open")
        reloaded = page.locator("#cc-alerts .alert")
        await expect(reloaded).to_have_count(1)
        await expect(reloaded).to_have_attribute("data-status", "resolved")
        await expect(reloaded).to_contain_text("triggered")
        await expect(reloaded).to_contain_text("· resolved")
        await expect(page.locator(f"#cc-recent tr[data-run-id='{run_id}']")).to_have_count(1)

        # For the screenshot: a run in flight beside the ended one, and one event opened.
        live = await start_slow_run(
            http, org, "A long answer that keeps streaming while we take a picture of it.", 400
        )
        await expect(page.locator(f"#cc-runs tr[data-run-id='{live}']")).to_have_count(1)
        await page.locator("#cc-log details[data-type='alert:resolved'] summary").click()
        await screenshot(page, "command-center")
        await http.post(f"/api/runs/{live}/cancel", headers=auth(org))
        await wait_status(http, org, live, {"cancelled"})


async def test_after_a_dropped_connection_the_pane_resumes_without_gap_or_duplicate(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    port = int(api.url.rsplit(":", 1)[1])
    async with CuttableProxy(port) as proxy, httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "First."}], name="a"))
        conversation = await create_conversation(http, org, agent["id"])
        await wait_status(http, org, await send(http, org, conversation, "one"), {"completed"})
        await sign_in(page, proxy.url, org.admin_key, view="command-center")
        await expect(page.locator("#cc-status")).to_have_text("open")
        rows = page.locator("#cc-log details[data-event-id]")
        await expect(rows).to_have_count(len(await org_event_ids(http, org)))

        proxy.cut()
        await expect(page.locator("#cc-status")).to_contain_text("reconnecting")
        missed = await send(http, org, conversation, "two")  # while the page is cut off
        await wait_status(http, org, missed, {"completed"})
        proxy.restore()

        await expect(page.locator("#cc-status")).to_have_text("open", timeout=15000)
        await expect(page.locator(f"#cc-recent tr[data-run-id='{missed}']")).to_have_count(1)
        stored = await org_event_ids(http, org)
        await expect(rows).to_have_count(len(stored))
        shown = [
            int(i) for i in await rows.evaluate_all("rows => rows.map(r => r.dataset.eventId)")
        ]
        assert shown == sorted(stored, reverse=True)
