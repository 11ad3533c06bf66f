"""An open audio stream ends once the API key it was opened with is revoked, like every other
stream (SSE, A2A), instead of playing on to the end of its text."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from deeployd.revocation import KEY_RECHECK_SECONDS
from deeployd.services import Services
from deeployd.settings import Settings
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


async def test_revoking_a_key_ends_run_speech_waiting_for_the_next_token(
    api: RunningApi, org: Org, settings: Settings
) -> None:
    # The run goes quiet after one sentence (far less than `voice_run_idle_seconds`, 300 s):
    # only the revocation can end this stream within the read deadline below.
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    services = await Services.open(settings, with_temporal=False)
    admin = {"Authorization": f"Bearer {org.admin_key}"}
    try:
        await services.publisher.publish(
            org.id, f"run:{run_id}", "token", {"token": "The first sentence is spoken. "}
        )
        async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=admin) as http:
            created = (
                await http.post("/api/keys", json={"name": "listener", "scopes": ["read"]})
            ).json()
            async with http.stream(
                "GET",
                f"/api/runs/{run_id}/speech",
                params={"voice": "nova", "format": "wav", "engine": "espeak"},
                headers={"Authorization": f"Bearer {created['key']}"},
            ) as response:
                assert response.status_code == 200
                chunks = response.aiter_raw()
                assert await anext(chunks)
                assert (await http.delete(f"/api/keys/{created['id']}")).status_code == 204

                async def rest() -> int:
                    return sum([len(chunk) async for chunk in chunks])

                await asyncio.wait_for(rest(), timeout=20)  # ends: no read timeout, no error
    finally:
        await services.close()
    for _ in range(100):  # the slot is given back once the server has closed the stream
        if api.app.state.voice_limiter.active(org.id) == 0:
            break
        await asyncio.sleep(0.05)
    assert api.app.state.voice_limiter.active(org.id) == 0
