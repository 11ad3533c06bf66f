"""Speaking a run's answer while its tokens arrive, and the per-organisation stream bound."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from deeployd.services import Services
from deeployd.settings import Settings
from deeployd.voice.probe import decode
from tests.conftest import Org, RunningApi, make_org

FIRST = "Here is the first sentence of the answer. "
REST = "It keeps arriving token by token. And now it is finished."


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[Services]:
    """Services with an event publisher, standing in for the agent-runs engine: these tests
    publish a run's `token`/`done` events themselves (the shapes agent runs publish)."""
    services = await Services.open(settings, with_temporal=False)
    try:
        yield services
    finally:
        await services.close()


def auth(org: Org) -> dict[str, str]:
    return {"Authorization": f"Bearer {org.admin_key}"}


async def publish_tokens(services: Services, org: Org, run_id: str, text: str) -> None:
    for word in text.split(" "):
        if word:
            await services.publisher.publish(
                org.id, f"run:{run_id}", "token", {"token": word + " "}
            )


async def test_run_answer_is_spoken_while_tokens_arrive_and_ends_after_done(
    api: RunningApi, org: Org, events: Services
) -> None:
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    await publish_tokens(events, org, run_id, "Here is")  # the run exists: it has begun streaming
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        http.stream(
            "GET",
            f"/api/runs/{run_id}/speech",
            params={"voice": "shimmer", "format": "wav"},
            headers=auth(org),
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers["x-voice-engine"] == "piper"  # the default engine, as for TTS
        iterator = response.aiter_raw()
        await publish_tokens(events, org, run_id, FIRST.removeprefix("Here is "))
        # Audio of the first sentence arrives although the run has not finished (no `done` yet).
        first = await asyncio.wait_for(anext(iterator), timeout=15)
        await publish_tokens(events, org, run_id, REST)
        await events.publisher.publish(org.id, f"run:{run_id}", "done", {"usage": {"total": 20}})
        # ...and the stream ends by itself after `done`.
        rest = b"".join([c async for c in iterator])
    decoded = decode(first + rest, "wav")
    assert decoded.sample_rate == int(response.headers["x-sample-rate"]) == 22050
    words = len((FIRST + REST).split())
    assert 1.0 <= words / decoded.seconds <= 6.0
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for _ in range(100):
            usage = (await http.get("/api/voice/usage", headers=auth(org))).json()
            if usage["requests"]:
                break
            await asyncio.sleep(0.05)
    assert usage["characters"] == len(FIRST + REST) + 1  # every token ended with a space


async def test_another_organisation_cannot_hear_a_run(
    api: RunningApi, org: Org, events: Services, settings
) -> None:
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    await publish_tokens(events, org, run_id, "Private answer.")
    await events.publisher.publish(org.id, f"run:{run_id}", "done", {})
    other = await make_org(settings)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        theirs = await http.get(f"/api/runs/{run_id}/speech", headers=auth(other))
        unknown = await http.get("/api/runs/run_missing/speech", headers=auth(org))
        mine = await http.get(
            f"/api/runs/{run_id}/speech", params={"access_token": org.admin_key, "format": "mp3"}
        )
        bad = await http.get(f"/api/runs/{run_id}/speech?voice=bogus", headers=auth(org))
    assert theirs.status_code == 404
    assert unknown.status_code == 404
    assert mine.status_code == 200 and decode(mine.content, "mp3").seconds > 0.5
    assert bad.status_code == 422
    assert bad.json()["errors"][0].startswith("query.voice: unknown voice 'bogus'")


async def test_concurrent_streams_per_organisation_are_bounded_with_429(
    api: RunningApi, org: Org, events: Services, settings
) -> None:
    limit = settings.voice_max_concurrent_per_org
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    await publish_tokens(events, org, run_id, "Still thinking")  # never finishes: streams stay open
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=api.url, timeout=30))
        for _ in range(limit):
            response = await stack.enter_async_context(
                http.stream("GET", f"/api/runs/{run_id}/speech", headers=auth(org))
            )
            assert response.status_code == 200
        refused = await http.post(
            "/api/voice/tts/stream", json={"text": "One too many."}, headers=auth(org)
        )
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        # Another organisation has its own budget.
        other = await make_org(settings)
        theirs = await http.post(
            "/api/voice/tts/stream", json={"text": "Not affected."}, headers=auth(other)
        )
        assert theirs.status_code == 200
    # Hanging up released the slots.
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for _ in range(100):
            if api.app.state.voice_limiter.active(org.id) == 0:
                break
            await asyncio.sleep(0.05)
        again = await http.post(
            "/api/voice/tts/stream", json={"text": "Room again."}, headers=auth(org)
        )
    assert again.status_code == 200


async def test_markdown_in_an_answer_is_spoken_as_plain_words(
    api: RunningApi, org: Org, events: Services
) -> None:
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    for token in ("**Bold** ", "answer", "."):
        await events.publisher.publish(org.id, f"run:{run_id}", "token", {"token": token})
    await events.publisher.publish(org.id, f"run:{run_id}", "done", {})
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        spoken = await http.get(
            f"/api/runs/{run_id}/speech",
            params={"format": "pcm", "engine": "espeak"},
            headers=auth(org),
        )
        plain = await http.post(
            "/api/voice/tts/stream",
            json={"text": "Bold answer.", "format": "pcm", "engine": "espeak"},
            headers=auth(org),
        )
    assert spoken.status_code == plain.status_code == 200
    # eSpeak (nearly deterministic, unlike Piper's sampled durations) adds a little jitter, so
    # compare lengths: "asterisk asterisk" would add ~2 s.
    assert len(spoken.content) == pytest.approx(len(plain.content), rel=0.02)


async def test_a_finished_run_without_events_speaks_its_stored_answer(
    api: RunningApi, org: Org, events: Services
) -> None:
    """Events expire (retention); the `runs` row keeps the answer, so speech still works."""
    from deeployd.models.agent import Run

    run_id = f"run_{uuid.uuid4().hex[:12]}"
    async with events.db.session() as session:
        session.add(
            Run(
                id=run_id,
                org_id=org.id,
                agent_id="agent_x",
                agent_name="Speaker",
                conversation_id="conv_x",
                workflow_id=f"wf-{run_id}",
                status="completed",
                result="The **stored** answer. It has two sentences.",
            )
        )
        await session.commit()
    other = await make_org(api.settings)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.get(
            f"/api/runs/{run_id}/speech", params={"format": "mp3"}, headers=auth(org)
        )
        theirs = await http.get(f"/api/runs/{run_id}/speech", headers=auth(other))
    assert response.status_code == 200
    assert 1.0 <= 7 / decode(response.content, "mp3").seconds <= 6.0
    assert theirs.status_code == 404
