"""The console's Voice page in a real Chromium: the audio element plays the stream as it arrives."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser import screenshot, sign_in
from tests.conftest import Org, RunningApi


async def test_voice_page_streams_speech_into_the_audio_element(
    api: RunningApi, org: Org, page: Page
) -> None:
    await sign_in(page, api.url, org.admin_key, view="voice")
    await expect(page.locator("#voice-voice option")).to_have_count(6)
    await page.select_option("#voice-voice", "nova")
    await page.fill("#voice-text", "Streaming speech. Sentence by sentence. Played as it arrives.")
    await page.click("#voice-speak")
    await expect(page.locator("#voice-info")).to_contain_text("bytes", timeout=20000)
    received = int(await page.get_attribute("#voice-info", "data-bytes") or 0)
    assert received > 5000
    # The browser decoded what it received: the audio element knows how long it is.
    duration = await page.evaluate("document.getElementById('voice-audio').duration")
    assert duration > 1.0
    await screenshot(page, "voice")
