"""Exactly-once effect across a worker crash: kill -9 the worker in the middle of a
100,000-item run into a database upsert destination, restart it, and the table ends with
exactly the expected totals — nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Org, RunningApi, worker_process
from tests.pipeline_helpers import auth, create_table, eventually, metrics, query

TOTAL = 100_000
GROUPS = 1000  # enough running-aggregate groups that the chain state travels by reference
CHUNK = 10_000


def item(i: int) -> dict[str, int | str]:
    return {"id": i, "grp": i % GROUPS, "amount": i % 7, "kind": "sale" if i % 10 else "refund"}


def expected_totals() -> dict[int, tuple[int, int]]:
    """Per group: (sum of amount, count) over the items the filter keeps."""
    totals: dict[int, tuple[int, int]] = {}
    for i in range(TOTAL):
        row = item(i)
        if row["kind"] != "sale":
            continue
        grp = int(row["grp"])
        amount, count = totals.get(grp, (0, 0))
        totals[grp] = (amount + int(row["amount"]), count + 1)
    return totals


async def ingest(http: httpx.AsyncClient, pid: str, start: int, stop: int) -> None:
    for first in range(start, stop, CHUNK):
        batch = [item(i) for i in range(first, min(stop, first + CHUNK))]
        response = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch)
        assert response.status_code == 202, response.text


async def test_kill_minus_9_mid_run_loses_nothing_and_counts_nothing_twice(
    api: RunningApi, org: Org
) -> None:
    schema = await create_table(
        api.settings,
        org.id,
        "CREATE TABLE {schema}.sales_by_group "
        "(grp int PRIMARY KEY, total bigint NOT NULL, n bigint NOT NULL)",
    )
    body = {
        "name": "sales-totals",
        "source": {"type": "webhook"},
        "transforms": [
            {"type": "filter", "config": {"field": "kind", "operator": "eq", "value": "sale"}},
            {"type": "map", "config": {"expression": {"grp": "grp", "amount": "amount"}}},
            {
                "type": "aggregate",
                "config": {
                    "groupBy": ["grp"],
                    "aggregations": [
                        {"field": "amount", "function": "sum", "alias": "total"},
                        {"field": "*", "function": "count", "alias": "n"},
                    ],
                },
            },
        ],
        "destination": {
            "type": "database",
            "config": {
                "table": "sales_by_group",
                "operation": "upsert",
                "conflictFields": ["grp"],
                "retryPolicy": {"maxRetries": 10, "backoffMs": 200},
            },
        },
        "options": {"batchSize": 2000},
    }
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key), timeout=60) as http:
        created = await http.post("/api/streaming/pipelines", json=body)
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        await ingest(http, pid, 0, TOTAL // 2)
        with worker_process(api.settings) as first_worker:
            assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
            at_kill = await eventually(
                lambda: metrics(http, org.admin_key, pid),
                lambda m: m["itemsProcessed"] >= 10_000,
                timeout=60,
                every=0.05,
            )
            first_worker.kill()  # SIGKILL: no graceful shutdown, an activity is mid-batch
            first_worker.wait()
        # The crash really was mid-run: most of the first half was still to do.
        assert at_kill["itemsProcessed"] < TOTAL // 2
        # Items keep being accepted durably while no worker runs.
        await ingest(http, pid, TOTAL // 2, TOTAL)
        with worker_process(api.settings):
            final = await eventually(
                lambda: metrics(http, org.admin_key, pid),
                lambda m: m["committedOffset"] == TOTAL,
                timeout=120,
                every=0.5,
            )
            assert (await http.post(f"/api/streaming/pipelines/{pid}/stop")).status_code == 200
    rows = await query(api.settings, f'SELECT grp, total, n FROM "{schema}".sales_by_group')
    assert {grp: (total, n) for grp, total, n in rows} == expected_totals()
    assert final["itemsProcessed"] == TOTAL
    assert final["itemsFiltered"] == TOTAL // 10
    assert final["itemsFailed"] == 0
    assert final["pending"] == 0
    # The 1,000-group aggregate state was kept out of workflow history (stored by reference).
    by_ref = await query(
        api.settings, "SELECT state->>'chain_state_ref' FROM pipelines WHERE id = %s", (pid,)
    )
    assert by_ref[0][0] is not None


async def test_an_open_window_closes_once_after_the_worker_is_killed(
    api: RunningApi, org: Org
) -> None:
    """The window's state and its deadline live in the workflow's checkpoint, not in the worker:
    a kill -9 while the window is open neither loses it nor emits it twice."""
    from tests.pipeline_helpers import HookReceiver

    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key), timeout=60) as http,
    ):
        created = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "windowed-counts",
                "source": {"type": "webhook"},
                "transforms": [
                    {
                        "type": "window",
                        "config": {
                            "type": "tumbling",
                            "size": 10000,
                            "aggregations": [
                                {"field": "*", "function": "count", "alias": "n"},
                                {"field": "amount", "function": "sum", "alias": "total"},
                            ],
                        },
                    }
                ],
                "destination": {"type": "webhook", "config": {"url": hook.url}},
                "options": {"maxWaitMs": 300},
            },
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        with worker_process(api.settings) as first_worker:
            assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
            await eventually(
                lambda: metrics(http, org.admin_key, pid),
                lambda m: m["status"] == "running",
                every=0.1,
            )
            batch = [{"amount": i} for i in range(10)]
            assert (
                await http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch)
            ).status_code == 202
            await eventually(
                lambda: metrics(http, org.admin_key, pid),
                lambda m: m["committedOffset"] == 10,
                every=0.05,
            )
            assert hook.accepted == []  # the window is still open
            first_worker.kill()
            first_worker.wait()
        with worker_process(api.settings):
            await eventually(lambda: _delivered(hook), lambda bodies: len(bodies) >= 1, timeout=60)
            # Well past the window's end: still exactly one emission for it.
            await asyncio.sleep(3)
            bodies = await _delivered(hook)
            await http.post(f"/api/streaming/pipelines/{pid}/stop")
    assert len(bodies) == 1
    assert bodies[0]["n"] == 10 and bodies[0]["total"] == sum(range(10))
    assert bodies[0]["windowStart"] < bodies[0]["windowEnd"]


async def _delivered(hook: Any) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    for record in hook.accepted:
        body = record["json"]
        bodies.extend(body if isinstance(body, list) else [body])
    return bodies
