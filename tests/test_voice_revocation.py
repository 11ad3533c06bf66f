"""An open audio stream ends once the API key it was opened with is revoked, like every other
stream (SSE, A2A), instead of playing on to the end of its text."""

from __future__ import annotations

import asyncio

import httpx

from deeployd.revocation import KEY_RECHECK_SECONDS
from tests.conftest import Org, RunningApi

TEXT = ("A key that was revoked must not keep a stream of speech playing. " * 80)[:5000]


async def test_revoking_a_key_ends_its_open_tts_stream(api: RunningApi, org: Org) -> None:
    admin = {"Authorization": f"Bearer {org.admin_key}"}
    async with httpx.AsyncClient(base_url=api.url, timeout=60, headers=admin) as http:
        created = (await http.post("/api/keys", json={"name": "tts", "scopes": ["write"]})).json()
        async with http.stream(
            "POST",
            "/api/voice/tts/stream",
            json={"text": TEXT, "voice": "echo", "format": "wav", "engine": "espeak"},
            headers={"Authorization": f"Bearer {created['key']}"},
        ) as response:
            assert response.status_code == 200
            chunks = response.aiter_raw()
            received = len(await anext(chunks))
            # The client stops reading (synthesis pauses on the bounded queue) while the key is
            # revoked, and gives the server time to re-check the key before reading on.
            assert (await http.delete(f"/api/keys/{created['id']}")).status_code == 204
            await asyncio.sleep(KEY_RECHECK_SECONDS + 1)
            received += sum([len(chunk) async for chunk in chunks])  # the server ends it
        usage = (await http.get("/api/voice/usage")).json()
        complete = await http.post(
            "/api/voice/tts/stream",
            json={"text": TEXT, "voice": "echo", "format": "wav", "engine": "espeak"},
        )
        assert complete.status_code == 200
    # Only what was synthesised before the revocation was spoken and metered.
    assert 0 < usage["characters"] < len(TEXT)
    assert received < len(complete.content)
