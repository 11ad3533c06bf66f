"""The demo agent `deeployd dev` keeps: its approval times out (so unattended runs end), and a
demo agent from before that gets the timeout without losing the user's own edits."""

from __future__ import annotations

import httpx

from deeployd.agents.demo import DEMO_APPROVAL_TIMEOUT_MS, ensure_demo_agent
from deeployd.db import Database
from tests.agent_support import auth, create_agent, scripted_agent
from tests.conftest import RunningApi, make_org


async def test_the_demo_agent_times_out_and_an_old_one_gets_only_that_field(
    api: RunningApi,
) -> None:
    fresh, old, tuned, foreign = [await make_org(api.settings) for _ in range(4)]
    db = Database(api.settings.require_database_url(), pool_size=1)
    await db.open()
    try:
        async with httpx.AsyncClient(base_url=api.url) as http:
            created = await ensure_demo_agent(db, fresh.id)
            assert created.approval_timeout_ms == DEMO_APPROVAL_TIMEOUT_MS

            # A demo agent made before approvals timed out, since edited by its user.
            before = await ensure_demo_agent(db, old.id)
            edit = {
                "approvalTimeoutMs": None,
                "description": "my demo",
                "providerOptions": {**before.provider_options, "tokenDelayMs": 0},
            }
            patched = await http.patch(f"/api/agents/{before.id}", json=edit, headers=auth(old))
            assert patched.status_code == 200, patched.text
            assert patched.json()["approvalTimeoutMs"] is None
            await ensure_demo_agent(db, old.id)  # what `deeployd dev` does on every start
            after = (await http.get(f"/api/agents/{before.id}", headers=auth(old))).json()
            assert after["approvalTimeoutMs"] == DEMO_APPROVAL_TIMEOUT_MS
            assert after["description"] == "my demo"
            assert after["providerOptions"]["tokenDelayMs"] == 0
            assert after["tools"] == patched.json()["tools"]

            # A timeout the user chose, or an agent named "demo" of their own, is left alone.
            mine = await ensure_demo_agent(db, tuned.id)
            await http.patch(
                f"/api/agents/{mine.id}", json={"approvalTimeoutMs": 5000}, headers=auth(tuned)
            )
            await ensure_demo_agent(db, tuned.id)
            kept = (await http.get(f"/api/agents/{mine.id}", headers=auth(tuned))).json()
            assert kept["approvalTimeoutMs"] == 5000
            own = await create_agent(
                http,
                foreign,
                {**scripted_agent([{"text": "hi"}], name="demo"), "provider": "openai"},
            )
            assert (await ensure_demo_agent(db, foreign.id)).id == own["id"]
            untouched = (await http.get(f"/api/agents/{own['id']}", headers=auth(foreign))).json()
            assert untouched["approvalTimeoutMs"] is None
    finally:
        await db.close()
