"""The console is served by the API, works offline, and signs in with an API key."""

from __future__ import annotations

import httpx
from playwright.async_api import Page

from tests.browser import sign_in
from tests.conftest import Org, RunningApi


async def test_root_redirects_to_the_console_and_every_asset_is_local(api: RunningApi) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        root = await http.get("/")
        index = await http.get("/console/")
        script = await http.get("/console/js/app.js")
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    assert index.status_code == 200 and "<title>Deeployd Streaming</title>" in index.text
    assert script.status_code == 200
    assert "http://" not in index.text and "https://" not in index.text  # no CDN


async def test_sign_in_rejects_a_bad_key_and_keeps_a_good_one_in_session_storage(
    api: RunningApi, org: Org, page: Page
) -> None:
    failed_requests: list[str] = []
    page.on("requestfailed", lambda request: failed_requests.append(request.url))
    await page.goto(f"{api.url}/console/")
    await page.fill("#signin-key", "dk_wrong")
    await page.click("#signin button[type=submit]")
    await page.wait_for_selector("#signin-error:has-text('not accepted')")

    await sign_in(page, api.url, org.admin_key)
    assert await page.evaluate("sessionStorage.getItem('deeployd.apiKey')") == org.admin_key
    assert await page.evaluate("localStorage.length") == 0
    assert org.name in await page.inner_text("#whoami")
    assert not [url for url in failed_requests if not url.startswith(api.url)]
