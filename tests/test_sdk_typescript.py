"""The TypeScript SDK (`sdk/typescript`), tested with Node's own test runner against the real
stack: embedded PostgreSQL, the Temporal dev server, a worker and the API on uvicorn."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import httpx
from temporalio.client import Client as TemporalClient

from deeployd.agents.demo import ensure_demo_agent
from deeployd.services import Services
from deeployd.settings import Settings
from deeployd.voice.probe import decode
from tests.conftest import Org, RunningApi
from tests.fakes import serve
from tests.fakes.analytics import AnalyticsFake
from tests.fakes.sources import running_router

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "sdk" / "typescript"
MIXPANEL_TOKEN = "mp-token-for-the-sdk"
NODE_TIMEOUT_S = 110


async def run_in_package(
    *argv: str, env: dict[str, str] | None = None, timeout: float
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=PACKAGE,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return -1, out.decode(errors="replace") + f"\n(killed after {timeout} s)"
    return process.returncode or 0, out.decode(errors="replace")


async def dev_dependencies() -> None:
    """`npm ci` (from the lockfile) when the package's dev dependencies are missing."""
    npm = shutil.which("npm")
    assert npm is not None, "Node.js and npm are needed for the TypeScript SDK's tests"
    if not (PACKAGE / "node_modules" / "typescript").is_dir():
        code, out = await run_in_package(npm, "ci", "--no-audit", "--no-fund", timeout=300)
        assert code == 0, out


async def compiled_tests() -> list[str]:
    """The package and its tests compiled by tsc (strict) into build/."""
    await dev_dependencies()
    shutil.rmtree(PACKAGE / "build", ignore_errors=True)
    code, out = await run_in_package(
        str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json", timeout=120
    )
    assert code == 0, f"tsc failed:\n{out}"
    return sorted(str(p) for p in (PACKAGE / "build" / "test").glob("*.test.js"))


async def test_the_typescript_sdk_against_the_real_stack(
    api: RunningApi,
    worker: Services,
    org: Org,
    settings: Settings,
    temporal_client: TemporalClient,
    tmp_path: Path,
) -> None:
    files = await compiled_tests()
    assert files, "no compiled test files"
    demo = await ensure_demo_agent(worker.db, org.id)
    mixpanel = AnalyticsFake(mixpanel_token=MIXPANEL_TOKEN)
    async with (
        serve(mixpanel.app) as mixpanel_url,
        running_router(temporal_client, settings, worker),
    ):
        async with httpx.AsyncClient(base_url=api.url) as http:
            response = await http.post(
                "/api/secrets",
                json={"name": "MIXPANEL_TOKEN", "value": MIXPANEL_TOKEN},
                headers={"Authorization": f"Bearer {org.admin_key}"},
            )
            assert response.status_code == 201, response.text
        code, out = await run_in_package(
            shutil.which("node") or "node",
            "--test",
            "--test-concurrency=1",
            "--test-reporter=spec",
            *files,
            env={
                "DEEPLOYD_API_URL": api.url,
                "DEEPLOYD_API_KEY": org.admin_key,
                "DEEPLOYD_MIXPANEL_URL": mixpanel_url,
                "DEEPLOYD_SDK_OUT": str(tmp_path),
                "DEEPLOYD_DEMO_AGENT_ID": demo.id,
            },
            timeout=NODE_TIMEOUT_S,
        )
        sys.stdout.write(out)
        assert code == 0, f"node --test failed:\n{out}"

    # What the SDK's pipeline delivered reached "Mixpanel" as the docs' map shaped it.
    completions = [e for e in mixpanel.mixpanel.values() if e["event"] == "agent_completion"]
    assert completions, "the agent-events-to-analytics pipeline delivered nothing"
    assert all(e["properties"]["tokens"] > 0 for e in completions)
    # The audio the SDK streamed decodes as MP3 speech.
    audio = (tmp_path / "tts.mp3").read_bytes()
    decoded = decode(audio, "mp3")
    assert decoded.codec.startswith("mp3") and decoded.seconds > 0.5
