"""The console's Pipelines page in a real Chromium: live metrics, pause from the page, the
form-based builder (kept in sync with the JSON view, checked live against the API), and
validation errors shown at the field they belong to."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from playwright.async_api import Page, expect

from deeployd.services import Services
from tests.browser import screenshot, sign_in
from tests.conftest import Org, RunningApi
from tests.pipeline_helpers import HookReceiver, auth


async def feed(http: httpx.AsyncClient, key: str, pipeline_id: str, stop: asyncio.Event) -> None:
    """Keep items flowing, like a live source, until told to stop."""
    n = 0
    while not stop.is_set():
        batch = [{"n": n + i} for i in range(20)]
        await http.post(
            f"/api/streaming/pipelines/{pipeline_id}/batch", json=batch, headers=auth(key)
        )
        n += 20
        await asyncio.sleep(0.1)


async def processed(page: Page, pipeline_id: str) -> int:
    return int(await page.inner_text(f"tr[data-pipeline-id='{pipeline_id}'] td.processed"))


async def test_pausing_from_the_page_shows_paused_and_metrics_stop_moving(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with HookReceiver() as hook, httpx.AsyncClient(base_url=api.url) as http:
        created = await http.post(
            "/api/streaming/pipelines",
            headers=auth(org.admin_key),
            json={
                "name": "live-metrics",
                "source": {"type": "webhook"},
                "transforms": [{"type": "map", "config": {"expression": {"n": "n"}}}],
                "destination": {"type": "webhook", "config": {"url": hook.url}},
                "options": {"batchSize": 50, "maxWaitMs": 200},
            },
        )
        pipeline_id = created.json()["id"]
        await http.post(
            f"/api/streaming/pipelines/{pipeline_id}/start", headers=auth(org.admin_key)
        )
        stop = asyncio.Event()
        feeder = asyncio.create_task(feed(http, org.admin_key, pipeline_id, stop))
        try:
            await sign_in(page, api.url, org.admin_key, view="pipelines")
            row = page.locator(f"tr[data-pipeline-id='{pipeline_id}']")
            await expect(row.locator("[data-status]")).to_have_text("running")
            first = await processed(page, pipeline_id)
            await expect(row.locator("td.processed")).not_to_have_text(str(first), timeout=10000)
            await asyncio.sleep(3)  # a few metric ticks draw the throughput sparkline
            await screenshot(page, "pipelines")

            await row.locator("button[data-action=pause]").click()
            await expect(row.locator("[data-status]")).to_have_text("paused")
            await asyncio.sleep(1.5)  # let anything already in flight land
            frozen = await processed(page, pipeline_id)
            await asyncio.sleep(2.5)  # items keep arriving while paused…
            assert await processed(page, pipeline_id) == frozen  # …but nothing is processed
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await feeder


async def test_create_from_json_shows_the_apis_error_at_the_right_field(
    api: RunningApi, org: Org, page: Page
) -> None:
    await sign_in(page, api.url, org.admin_key, view="pipelines")
    await page.click("#pl-tab-json")
    await page.fill(
        "#pl-json",
        """{"name": "broken", "source": {"type": "webhook"},
            "transforms": [{"type": "filter", "config": {"field": "a", "operator": "eq", "value": 1}},
                           {"type": "map", "config": {"expression": {"fullName": "concatt(a, b)"}}}],
            "destination": {"type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}}}""",
    )
    await page.click("#pl-create")
    marked = page.locator("#pl-errors [data-path='transforms[1].config.expression.fullName']")
    await expect(marked).to_have_class("error")
    await expect(marked).to_contain_text("unknown function 'concatt'")


async def test_the_builder_form_checks_live_stays_in_sync_with_json_and_creates_the_pipeline(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with HookReceiver() as hook, httpx.AsyncClient(base_url=api.url) as http:
        await sign_in(page, api.url, org.admin_key, view="pipelines")
        form = page.locator("#pl-form")
        await page.fill("#pl-name", "built-with-the-form")

        # A database destination naming a table that does not exist: the API's 422 lands on
        # the table field while typing, before anything is created.
        await form.locator("select[data-path='destination.type']").select_option("database")
        table = form.locator("[data-path='destination.config.table']")
        await table.fill("no_such_table")
        await expect(table).to_have_class("invalid")
        await expect(
            form.locator("label.field:has([data-path='destination.config.table'])")
        ).to_contain_text("no_such_table")
        await form.locator("select[data-path='destination.type']").select_option("webhook")
        await form.locator("[data-path='destination.config.url']").fill(hook.url)

        # A typo in a map expression is marked at that expression's input.
        expression = form.locator("[data-path='transforms[1].config.expression.customer']")
        await expression.fill("upperr(customer.name)")
        await expect(expression).to_have_class("invalid")
        await expect(page.locator("#pl-validity")).to_contain_text("unknown function 'upperr'")
        await screenshot(page, "pipeline-builder")

        # The JSON view shows the same body and the same error; fixing it there fixes the form.
        await page.click("#pl-tab-json")
        assert "upperr(customer.name)" in await page.input_value("#pl-json")
        marked = page.locator(
            "#pl-json-errors [data-path='transforms[1].config.expression.customer']"
        )
        await expect(marked).to_have_class("error")
        fixed = (await page.input_value("#pl-json")).replace("upperr(", "upper(")
        await page.fill("#pl-json", fixed)
        await expect(page.locator("#pl-validity")).to_contain_text("valid: ready to create")
        await page.click("#pl-tab-form")
        await expect(expression).to_have_value("upper(customer.name)")
        await expect(expression).not_to_have_class("invalid")

        # One more step from the form: batches of two.
        await page.select_option("#pl-add-transform", "batch")
        await form.locator("[data-path='transforms[2].config.size']").fill("2")
        await expect(page.locator("#pl-validity")).to_contain_text("valid: ready to create")
        await page.click("#pl-create")
        await expect(page.locator("#pl-create-result")).to_contain_text("Created")

        listed = await http.get("/api/streaming/pipelines", headers=auth(org.admin_key))
        [pipeline] = listed.json()["items"]
        assert pipeline["name"] == "built-with-the-form"
        assert [step["type"] for step in pipeline["transforms"]] == ["filter", "map", "batch"]
        assert pipeline["destination"] == {
            "type": "webhook",
            "config": {"url": hook.url, "method": "POST"},
        }
        # It runs as built: paid orders only, mapped, two per delivery.
        await http.post(
            f"/api/streaming/pipelines/{pipeline['id']}/start", headers=auth(org.admin_key)
        )
        orders = [
            {"id": 1, "status": "paid", "customer": {"name": "ada"}, "total": "10"},
            {"id": 2, "status": "open", "customer": {"name": "bob"}, "total": "5"},
            {"id": 3, "status": "paid", "customer": {"name": "cy"}, "total": "7.5"},
        ]
        await http.post(
            f"/api/streaming/pipelines/{pipeline['id']}/batch",
            json=orders,
            headers=auth(org.admin_key),
        )
        for _ in range(100):
            if hook.accepted:
                break
            await asyncio.sleep(0.1)
        assert hook.accepted[0]["json"] == {
            "items": [
                {"orderId": 1, "customer": "ADA", "total": 10},
                {"orderId": 3, "customer": "CY", "total": 7.5},
            ],
            "count": 2,
        }
        await http.post(
            f"/api/streaming/pipelines/{pipeline['id']}/stop", headers=auth(org.admin_key)
        )

        # The same builder edits it: the row's "edit" loads its configuration, save PUTs it.
        row = page.locator(f"tr[data-pipeline-id='{pipeline['id']}']")
        await row.locator("button[data-action=edit]").click()
        await expect(page.locator("#pl-builder h3")).to_have_text("Edit built-with-the-form")
        await expect(form.locator("[data-path='transforms[2].config.size']")).to_have_value("2")
        await page.fill("#pl-name", "renamed-in-the-form")
        await form.locator("[data-path='transforms[2].config.size']").fill("3")
        await expect(page.locator("#pl-validity")).to_contain_text("valid: ready to save")
        await page.click("#pl-create")
        await expect(page.locator("#pl-create-result")).to_contain_text("Saved")
        stored = await http.get(
            f"/api/streaming/pipelines/{pipeline['id']}", headers=auth(org.admin_key)
        )
        assert stored.json()["name"] == "renamed-in-the-form"
        assert stored.json()["transforms"][2] == {
            "type": "batch",
            "config": {"size": 3, "timeout": 5000},
        }
