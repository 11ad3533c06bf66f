"""Delivery guarantees over a real worker, Temporal, Postgres and a real HTTP receiver:
retries per policy with in-order delivery, dead letters and replay, pause/resume/stop,
checkpoint restore, and the live SSE stream."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus

import deeployd
from deeployd.pipelines.signing import verify
from deeployd.services import Services
from tests.conftest import Org, RunningApi
from tests.pipeline_helpers import HookReceiver, auth, create_table, eventually, metrics, query
from tests.sse import collect

SIGNING = "whsec_" + base64.b64encode(b"destination-signing-key-32-bytes").decode()


async def make_pipeline(
    http: httpx.AsyncClient, url: str, *, retry: dict[str, int], **extra: Any
) -> str:
    body = {
        "name": "to-hook",
        "source": {"type": "webhook"},
        "transforms": [
            {"type": "filter", "config": {"field": "keep", "operator": "eq", "value": True}},
            {"type": "map", "config": {"expression": {"n": "n", "label": 'concat("item-", n)'}}},
        ],
        "destination": {
            "type": "webhook",
            "config": {
                "url": url,
                "headers": {"x-token": "${secrets.HOOK_TOKEN}"},
                "signingSecret": "${secrets.HOOK_SIGNING}",
                "retryPolicy": retry,
            },
        },
        **extra,
    }
    created = await http.post("/api/streaming/pipelines", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def put_secrets(http: httpx.AsyncClient) -> None:
    for name, value in (("HOOK_TOKEN", "t0ps3cret"), ("HOOK_SIGNING", SIGNING)):
        assert (
            await http.post("/api/secrets", json={"name": name, "value": value})
        ).status_code == 201


async def test_webhook_down_for_a_while_is_retried_then_delivered_in_order(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(
            http, hook.url, retry={"maxRetries": 8, "backoffMs": 100}, options={"batchSize": 7}
        )
        hook.down = True
        items = [{"n": i, "keep": i % 3 != 0} for i in range(30)]
        assert (
            await http.post(f"/api/streaming/pipelines/{pid}/batch", json=items)
        ).status_code == 202
        assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
        await eventually(lambda: asyncio.sleep(0, len(hook.requests)), lambda n: n >= 3)
        hook.down = False
        expected = [i for i in range(30) if i % 3 != 0]
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n >= len(expected))
        m = await eventually(
            lambda: metrics(http, org.admin_key, pid), lambda m: m["itemsProcessed"] == 30
        )
    # In order, each item once, with the resolved header and a valid signature.
    assert [r["json"]["n"] for r in hook.accepted] == expected
    assert hook.accepted[0]["json"] == {"n": 1, "label": "item-1"}
    ids = [r["headers"]["webhook-id"] for r in hook.accepted]
    assert len(set(ids)) == len(ids)
    for record in hook.accepted:
        assert record["headers"]["x-token"] == "t0ps3cret"
        verify(SIGNING, record["headers"], record["body"])
    # The first item was attempted several times (the receiver was down) under one stable id.
    first_id = hook.accepted[0]["headers"]["webhook-id"]
    assert sum(r["headers"]["webhook-id"] == first_id for r in hook.requests) >= 3
    assert m["itemsFiltered"] == 10 and m["itemsDelivered"] == 20 and m["itemsFailed"] == 0


async def test_a_retried_batch_does_not_resend_what_the_receiver_confirmed(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(http, hook.url, retry={"maxRetries": 3, "backoffMs": 100})
        hook.fail_after = 4  # one 503 in the middle of the batch
        items = [{"n": i, "keep": True} for i in range(8)]
        assert (
            await http.post(f"/api/streaming/pipelines/{pid}/batch", json=items)
        ).status_code == 202
        assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n >= 8)
        await eventually(
            lambda: metrics(http, org.admin_key, pid), lambda m: m["itemsDelivered"] == 8
        )
    # The retry resumed after the 4 confirmed items: 9 requests for 8 items, none twice.
    assert [r["json"]["n"] for r in hook.accepted] == list(range(8))
    assert len(hook.requests) == 9


async def test_past_the_retries_items_become_dead_letters_and_replay_delivers_them(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(http, hook.url, retry={"maxRetries": 1, "backoffMs": 50})
        assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
        hook.down = True
        batch = [{"n": i, "keep": True} for i in range(3)]
        assert (
            await http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch)
        ).status_code == 202
        dead = await eventually(
            lambda: http.get(f"/api/streaming/pipelines/{pid}/dead-letters"),
            lambda r: len(r.json()["items"]) == 3,
        )
        letters = dead.json()["items"]
        assert [d["value"]["n"] for d in letters] == [0, 1, 2]
        assert all(d["stage"] == "delivery" and "HTTP 503" in d["error"] for d in letters)
        # maxRetries 1 -> exactly 2 attempts at the batch's first item, then it moved on.
        assert len(hook.requests) == 2
        health = (await http.get(f"/api/streaming/pipelines/{pid}/health")).json()
        assert health["status"] == "degraded"

        # The pipeline keeps going: later items are delivered once the receiver is back.
        hook.down = False
        assert (
            await http.post(f"/api/streaming/pipelines/{pid}/process", json={"n": 10, "keep": True})
        ).status_code == 202
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 1)

        replay = await http.post(f"/api/streaming/pipelines/{pid}/dead-letters/replay")
        assert replay.status_code == 200, replay.text
        assert replay.json()["redelivered"] == 3 and replay.json()["failed"] == 0
        remaining = (await http.get(f"/api/streaming/pipelines/{pid}/dead-letters")).json()
        assert remaining["items"] == []
        m = await metrics(http, org.admin_key, pid)
        logged = (
            await http.get(
                "/api/events", params={"streams": f"pipeline:{pid}", "types": "delivery_failed"}
            )
        ).json()["items"]
    assert [r["json"]["n"] for r in hook.accepted] == [10, 0, 1, 2]
    assert [e["data"]["attempt"] for e in logged] == [1, 2]
    assert all("HTTP 503" in e["data"]["error"] for e in logged)
    assert m["itemsFailed"] == 3 and m["deadLetters"] == 3


async def test_pause_resume_checkpoint_restore_and_stop(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(http, hook.url, retry={"maxRetries": 3, "backoffMs": 100})
        base = f"/api/streaming/pipelines/{pid}"
        events = asyncio.create_task(
            collect(http, f"{base}/stream", count=3, params={"lastEventId": "0"})
        )
        assert (await http.post(f"{base}/start")).status_code == 200
        first = [{"n": i, "keep": True} for i in range(5)]
        assert (await http.post(f"{base}/batch", json=first)).status_code == 202
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 5)

        # Checkpoint after the first five, then pause: nothing more is delivered while paused.
        checkpoint = await http.post(f"{base}/checkpoints")
        assert checkpoint.status_code == 201, checkpoint.text
        assert checkpoint.json()["offset"] == 5
        paused = await http.post(f"{base}/pause")
        assert paused.json()["status"] == "paused"
        second = [{"n": i, "keep": True} for i in range(5, 10)]
        assert (await http.post(f"{base}/batch", json=second)).status_code == 202
        await asyncio.sleep(2.5)  # several idle cycles' worth: a running pipeline would deliver
        assert len(hook.accepted) == 5
        m = await metrics(http, org.admin_key, pid)
        assert m["pending"] == 5 and m["status"] == "paused"

        # Resume continues from the checkpointed position: exactly the next five.
        assert (await http.post(f"{base}/resume")).json()["status"] == "running"
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 10)

        # Restore the checkpoint: items after offset 5 are processed again.
        listed = (await http.get(f"{base}/checkpoints")).json()["items"]
        assert [c["id"] for c in listed] == [checkpoint.json()["id"]]
        restored = await http.post(f"{base}/checkpoints/{checkpoint.json()['id']}/restore")
        assert restored.status_code == 200, restored.text
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 15)

        # A new config applies from the current position on: the next item uses the new map.
        config = (await http.get(base)).json()
        config["transforms"][1]["config"]["expression"]["label"] = 'concat("v2-", n)'
        updated = await http.put(
            base,
            json={k: config[k] for k in ("name", "source", "transforms", "destination")},
        )
        assert updated.status_code == 200, updated.text
        assert (await http.post(f"{base}/process", json={"n": 99, "keep": True})).status_code == 202
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 16)
        assert hook.accepted[-1]["json"] == {"n": 99, "label": "v2-99"}

        # Stop completes the workflow and keeps the state for the next start.
        stopped = await http.post(f"{base}/stop")
        assert stopped.json()["status"] == "stopped"
        description = await temporal_client.get_workflow_handle(f"pipeline-{pid}").describe()
        assert description.status == WorkflowExecutionStatus.COMPLETED
        assert description.search_attributes["DeeploydPipelineId"] == [pid]
        m = await metrics(http, org.admin_key, pid)
        assert m["committedOffset"] == 11 and m["itemsDelivered"] == 16
        streamed = await asyncio.wait_for(events, timeout=10)
        logged = (
            await http.get("/api/events", params={"streams": f"pipeline:{pid}", "limit": 1000})
        ).json()["items"]
    assert [n["json"]["n"] for n in hook.accepted] == [*range(10), *range(5, 10), 99]
    # The live stream carried the status change and the once-a-second metrics.
    assert streamed[0][1] == {
        "type": "status",
        "pipelineId": pid,
        "status": "running",
        "previous": "created",
    }
    assert any(e[1]["type"] == "metrics" and "itemsProcessed" in e[1] for e in streamed)
    statuses = [e["data"]["status"] for e in logged if e["type"] == "status"]
    assert statuses == ["running", "paused", "running", "stopped"]
    assert {"checkpoint", "restored", "metrics", "config_updated"} <= {e["type"] for e in logged}


async def test_sdk_drives_a_pipeline_into_a_database_table(
    api: RunningApi, org: Org, worker: Services, client: deeployd.Client
) -> None:
    schema = await create_table(
        api.settings,
        org.id,
        "CREATE TABLE {schema}.agent_metrics (agent_id text, day date, tokens int, "
        "PRIMARY KEY (agent_id, day))",
    )
    streaming = client.streaming
    pipeline = await streaming.create_pipeline(
        name="agent-metrics",
        source={"type": "webhook"},
        transforms=[
            {
                "type": "filter",
                "config": {"field": "status", "operator": "eq", "value": "completed"},
            },
            {
                "type": "map",
                "config": {"expression": {"agent_id": "agentId", "day": "day", "tokens": "tokens"}},
            },
        ],
        destination={
            "type": "database",
            "config": {
                "table": "agent_metrics",
                "operation": "upsert",
                "conflictFields": ["agent_id", "day"],
            },
        },
    )
    pid = pipeline["id"]
    assert (await streaming.get_pipeline(pid))["status"] == "created"
    assert (await streaming.list_pipelines())["total"] == 1
    runs = [
        {"agentId": "a1", "day": "2026-01-01", "tokens": 5, "status": "completed"},
        {"agentId": "a1", "day": "2026-01-01", "tokens": 7, "status": "completed"},  # upsert
        {"agentId": "a2", "day": "2026-01-01", "tokens": 3, "status": "failed"},
    ]
    assert (await streaming.batch(pid, runs))["offsets"] == [1, 2, 3]
    await streaming.start_pipeline(pid)
    assert (await streaming.process(pid, {**runs[2], "status": "completed"}))["offsets"] == [4]
    metrics = await eventually(
        lambda: streaming.get_pipeline_metrics(pid), lambda m: m["itemsProcessed"] == 4
    )
    assert metrics["itemsFiltered"] == 1 and metrics["backpressure"] == 0.0
    assert set(metrics["latency"]) == {"avg", "p50", "p95", "p99"}
    assert (await streaming.get_pipeline_health(pid))["status"] == "healthy"
    checkpoint = await streaming.create_checkpoint(pid)
    assert [c["id"] for c in await streaming.list_checkpoints(pid)] == [checkpoint["id"]]
    assert (await streaming.stop_pipeline(pid))["status"] == "stopped"
    assert (await streaming.dead_letters(pid))["items"] == []
    stats = await streaming.stats()
    assert stats["itemsProcessed"] == 4 and stats["byStatus"]["stopped"] == 1
    rows = await query(
        api.settings, f'SELECT agent_id, day::text, tokens FROM "{schema}".agent_metrics ORDER BY 1'
    )
    assert rows == [("a1", "2026-01-01", 7), ("a2", "2026-01-01", 3)]
    await streaming.delete_pipeline(pid)
    assert (await streaming.list_pipelines())["total"] == 0


async def test_a_config_that_stops_compiling_fails_the_pipeline_visibly(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(http, hook.url, retry={"maxRetries": 2, "backoffMs": 50})
        base = f"/api/streaming/pipelines/{pid}"
        assert (await http.post(f"{base}/start")).status_code == 200
        # As if a newer engine rejected a stored config: it is changed under the API's feet.
        await query(
            api.settings,
            "UPDATE pipelines SET transforms = %s::json, config_version = config_version + 1 "
            "WHERE id = %s RETURNING id",
            ('[{"type": "teleport", "config": {}}]', pid),
        )
        assert (await http.post(f"{base}/process", json={"n": 1, "keep": True})).status_code == 202
        failed = await eventually(
            lambda: http.get(base), lambda r: r.json()["status"] == "failed", timeout=30
        )
        assert failed.json()["status"] == "failed"
        health = (await http.get(f"{base}/health")).json()
        assert health["status"] == "unhealthy"
        assert any("unknown transform type 'teleport'" in r for r in health["reasons"])
        # The run itself fails right after recording the status, so the UI shows it as Failed.
        await eventually(
            lambda: temporal_client.get_workflow_handle(f"pipeline-{pid}").describe(),
            lambda d: d.status == WorkflowExecutionStatus.FAILED,
        )
        # Fixing the config and starting again delivers the waiting item; nothing was lost.
        fixed = (await http.get(base)).json()
        fixed["transforms"] = []
        body = {k: fixed[k] for k in ("name", "source", "transforms", "destination")}
        assert (await http.put(base, json=body)).status_code == 200
        assert (await http.post(f"{base}/start")).json()["status"] == "running"
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 1)
    assert hook.accepted[0]["json"] == {"n": 1, "keep": True}


async def test_continue_as_new_carries_offset_state_and_counters(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    from deeployd.pipelines import control
    from deeployd.pipelines.runtime import PipelineWorkflowInput
    from workflows.pipeline import PipelineWorkflow

    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(
            http, hook.url, retry={"maxRetries": 3, "backoffMs": 100}, options={"batchSize": 2}
        )
        items = [{"n": i, "keep": True} for i in range(10)]
        assert (
            await http.post(f"/api/streaming/pipelines/{pid}/batch", json=items)
        ).status_code == 202
        # Started like the API does, but continuing as new every 2 batches instead of 500.
        first = await temporal_client.start_workflow(
            PipelineWorkflow.run,
            PipelineWorkflowInput(
                org_id=org.id,
                pipeline_id=pid,
                name="to-hook",
                source_type="webhook",
                destination_type="webhook",
                batch_size=2,
                continue_every=2,
            ),
            id=control.workflow_id(pid),
            task_queue=api.settings.task_queue,
        )
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 10)
        live = await eventually(
            lambda: control.query_metrics(temporal_client, pid),
            lambda m: m is not None and m["itemsProcessed"] == 10,
        )
        latest = await temporal_client.get_workflow_handle(control.workflow_id(pid)).describe()
        await temporal_client.get_workflow_handle(control.workflow_id(pid)).terminate("done")
    assert [r["json"]["n"] for r in hook.accepted] == list(range(10))
    assert live is not None and live["itemsDelivered"] == 10 and live["committedOffset"] == 10
    assert latest.run_id != first.first_execution_run_id  # it really continued as new


async def test_a_partial_batch_is_delivered_when_its_timeout_fires_on_an_idle_pipeline(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(http, hook.url, retry={"maxRetries": 3, "backoffMs": 100})
        config = (await http.get(f"/api/streaming/pipelines/{pid}")).json()
        body = {k: config[k] for k in ("name", "source", "destination")}
        body["transforms"] = [{"type": "batch", "config": {"size": 100, "timeout": 700}}]
        assert (await http.put(f"/api/streaming/pipelines/{pid}", json=body)).status_code == 200
        assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
        items = [{"n": i} for i in range(3)]
        assert (
            await http.post(f"/api/streaming/pipelines/{pid}/batch", json=items)
        ).status_code == 202
        # Nothing else arrives: only the timer can close this batch of 3 (size is 100).
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 1)
        more = [{"n": i} for i in range(3, 5)]
        assert (
            await http.post(f"/api/streaming/pipelines/{pid}/batch", json=more)
        ).status_code == 202
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 2)
    first, second = (r["json"] for r in hook.accepted)
    assert [v["n"] for v in first["items"]] == [0, 1, 2]
    assert [v["n"] for v in second["items"]] == [3, 4]
    assert hook.accepted[0]["headers"]["webhook-id"] == f"{pid}-1-3"


async def test_database_destination_through_a_connection_secret_and_bad_rows_to_dead_letters(
    api: RunningApi, org: Org, worker: Services, external_postgres: str
) -> None:
    # Another PostgreSQL server, on loopback TCP (the platform's own database is refused).
    external = api.settings.model_copy(update={"database_url": external_postgres})
    schema = f"ext_{org.id.split('_')[1]}"
    await query(external, f'CREATE SCHEMA "{schema}"')
    await query(
        external,
        f'CREATE TABLE "{schema}".events (id int PRIMARY KEY, name text NOT NULL) ',
    )
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        dsn = external_postgres
        assert (
            await http.post("/api/secrets", json={"name": "EXT_DSN", "value": dsn})
        ).status_code == 201
        created = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "to-external-db",
                "source": {"type": "webhook"},
                "transforms": [],
                "destination": {
                    "type": "database",
                    "config": {
                        "table": f"{schema}.events",
                        "operation": "insert",
                        "connection": "${secrets.EXT_DSN}",
                        "retryPolicy": {"maxRetries": 0, "backoffMs": 10},
                    },
                },
            },
        )
        assert created.status_code == 201, created.text
        pipeline = created.json()
        assert pipeline["destination"]["config"]["connection"] == "${secrets.EXT_DSN}"
        pid = pipeline["id"]
        base = f"/api/streaming/pipelines/{pid}"
        assert (await http.post(f"{base}/start")).status_code == 200
        good = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        assert (await http.post(f"{base}/batch", json=good)).status_code == 202
        await eventually(
            lambda: metrics(http, org.admin_key, pid), lambda m: m["itemsDelivered"] == 2
        )
        # A field the table does not have is not retried: the batch becomes dead letters.
        assert (
            await http.post(f"{base}/process", json={"id": 3, "colour": "red"})
        ).status_code == 202
        dead = await eventually(
            lambda: http.get(f"{base}/dead-letters"), lambda r: len(r.json()["items"]) == 1
        )
    [letter] = dead.json()["items"]
    assert letter["value"] == {"id": 3, "colour": "red"}
    assert "no column(s) colour" in letter["error"]
    rows = await query(external, f'SELECT id, name FROM "{schema}".events ORDER BY id')
    assert rows == [(1, "a"), (2, "b")]


async def test_items_a_transform_fails_on_are_dead_lettered_and_replayed_after_a_fix(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(http, hook.url, retry={"maxRetries": 1, "backoffMs": 50})
        base = f"/api/streaming/pipelines/{pid}"
        config = (await http.get(base)).json()
        body = {k: config[k] for k in ("name", "source", "destination")}
        body["transforms"] = [
            {"type": "map", "config": {"expression": {"amount": "toNumber(amount)"}}}
        ]
        assert (await http.put(base, json=body)).status_code == 200
        assert (await http.post(f"{base}/start")).status_code == 200
        items = [{"amount": "4"}, {"amount": "abc"}, {"amount": "6"}]
        assert (await http.post(f"{base}/batch", json=items)).status_code == 202
        dead = await eventually(
            lambda: http.get(f"{base}/dead-letters"), lambda r: len(r.json()["items"]) == 1
        )
        [letter] = dead.json()["items"]
        assert letter["stage"] == "transform" and letter["firstOffset"] == 2
        assert letter["value"] == {"amount": "abc"}
        assert "abc" in letter["error"]
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 2)
        # Fix the config so text passes through, then replay: the item is re-ingested.
        body["transforms"] = [{"type": "map", "config": {"expression": {"amount": "amount"}}}]
        assert (await http.put(base, json=body)).status_code == 200
        replay = (await http.post(f"{base}/dead-letters/replay")).json()
        assert replay["reingested"] == 1 and replay["failed"] == 0
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 3)
        m = await metrics(http, org.admin_key, pid)
    assert [r["json"] for r in hook.accepted] == [{"amount": 4}, {"amount": 6}, {"amount": "abc"}]
    assert m["itemsProcessed"] == 4 and m["itemsFailed"] == 1


async def test_restore_reprocesses_from_the_checkpoints_offset_and_aggregate_state(
    api: RunningApi, org: Org, worker: Services
) -> None:
    groups = 300  # enough groups that the aggregate state is kept by reference
    schema = await create_table(
        api.settings, org.id, "CREATE TABLE {schema}.totals (g int PRIMARY KEY, n bigint)"
    )
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        created = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "group-counts",
                "source": {"type": "webhook"},
                "transforms": [
                    {
                        "type": "aggregate",
                        "config": {
                            "groupBy": ["g"],
                            "aggregations": [{"field": "*", "function": "count", "alias": "n"}],
                        },
                    }
                ],
                "destination": {
                    "type": "database",
                    "config": {"table": "totals", "operation": "upsert", "conflictFields": ["g"]},
                },
            },
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        base = f"/api/streaming/pipelines/{pid}"
        half = [{"g": i % groups} for i in range(2 * groups)]
        assert (await http.post(f"{base}/start")).status_code == 200
        assert (await http.post(f"{base}/batch", json=half)).status_code == 202
        await eventually(
            lambda: metrics(http, org.admin_key, pid), lambda m: m["committedOffset"] == 600
        )
        checkpoint = (await http.post(f"{base}/checkpoints")).json()
        assert checkpoint["offset"] == 600
        assert (await http.post(f"{base}/batch", json=half)).status_code == 202
        await eventually(
            lambda: metrics(http, org.admin_key, pid), lambda m: m["committedOffset"] == 1200
        )
        counts = await query(api.settings, f'SELECT DISTINCT n FROM "{schema}".totals')
        assert counts == [(4,)]
        restored = await http.post(f"{base}/checkpoints/{checkpoint['id']}/restore")
        assert restored.json()["offset"] == 600
        # Items 601..1200 run again on top of the checkpoint's counts (2 per group), not the
        # current ones (4 per group): the totals come out the same, 4, not 6.
        final = await eventually(
            lambda: metrics(http, org.admin_key, pid), lambda m: m["itemsProcessed"] == 1800
        )
        assert final["committedOffset"] == 1200
    counts = await query(api.settings, f'SELECT count(*), min(n), max(n) FROM "{schema}".totals')
    assert counts == [(groups, 4, 4)]


async def test_processed_items_are_pruned_but_never_past_the_oldest_checkpoint(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(
            http,
            hook.url,
            retry={"maxRetries": 3, "backoffMs": 100},
            options={"batchSize": 1, "retentionHours": 0},
        )
        base = f"/api/streaming/pipelines/{pid}"
        assert (await http.post(f"{base}/start")).status_code == 200
        first = [{"n": i, "keep": True} for i in range(5)]
        assert (await http.post(f"{base}/batch", json=first)).status_code == 202
        await eventually(
            lambda: metrics(http, org.admin_key, pid), lambda m: m["committedOffset"] == 5
        )
        assert (await http.post(f"{base}/checkpoints")).json()["offset"] == 5
        rest = [{"n": i, "keep": True} for i in range(5, 25)]
        assert (await http.post(f"{base}/batch", json=rest)).status_code == 202

        async def stored() -> list[int]:
            rows = await query(
                api.settings,
                'SELECT "offset" FROM pipeline_items WHERE pipeline_id = %s ORDER BY 1',
                (pid,),
            )
            return [r[0] for r in rows]

        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 25)
        # Items up to the checkpoint go; the ones after it stay (a restore needs them).
        kept = await eventually(stored, lambda offsets: offsets == list(range(6, 26)), timeout=30)
        assert kept == list(range(6, 26))
