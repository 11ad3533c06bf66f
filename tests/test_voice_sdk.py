"""The SDK's `client.voice` and the `deeployd say` command against the real API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

import deeployd
from deeployd.sdk.client import ApiError
from deeployd.voice.probe import decode
from tests.conftest import REPO, Org, RunningApi


async def test_sdk_streams_audio_and_reads_voices_and_usage(
    client: deeployd.Client, org: Org
) -> None:
    text = "The SDK yields audio bytes as they arrive. Two sentences here."
    chunks = [c async for c in client.voice.tts_stream(text=text, voice="fable", format="flac")]
    assert len(chunks) >= 2  # one per sentence at least, plus the encoder's tail
    decoded = decode(b"".join(chunks), "flac")
    assert decoded.sample_rate == 22050
    assert 1.0 <= len(text.split()) / decoded.seconds <= 6.0

    voices = await client.voice.voices()
    assert voices["defaultProvider"] == "embedded"
    with pytest.raises(ApiError) as refused:
        async for _ in client.voice.tts_stream(text="", voice="alloy"):
            pass
    assert refused.value.status == 422

    for _ in range(100):
        usage = await client.voice.usage()
        if usage["requests"]:
            break
        await asyncio.sleep(0.05)
    assert usage["characters"] == len(text)


async def test_say_command_writes_a_playable_file(api: RunningApi, org: Org, tmp_path) -> None:
    out = tmp_path / "hello.ogg"
    env = {**os.environ, "DEEPLOYD_URL": api.url, "DEEPLOYD_API_KEY": org.admin_key}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deeployd.cli",
        "say",
        "Hello from the command line.",
        "-o",
        str(out),
        "--voice",
        "onyx",
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert b"wrote" in err
    decoded = decode(out.read_bytes(), "opus")  # format taken from the .ogg extension
    assert decoded.codec == "opus" and decoded.seconds > 1.0
