"""Pipelines never wedge: multi-field groupBy end to end, a state the database refuses, poison
items per destination type, and a bounded property-based run through real pipelines — over a
real worker, Temporal, PostgreSQL and local HTTP receivers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from deeployd.services import Services
from tests.conftest import Org, RunningApi
from tests.fakes import serve
from tests.fakes.analytics import AnalyticsFake
from tests.fakes.slack import HOOK_PATH, SlackFake
from tests.pipeline_helpers import (
    HookReceiver,
    auth,
    create_table,
    eventually,
    group_of,
    metrics,
    query,
)
from workflows.pipeline import PipelineWorkflow

TWO_FIELDS = ["agent_id", "date"]


async def create(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await http.post(
        "/api/streaming/pipelines", json={"source": {"type": "webhook"}, **body}
    )
    assert created.status_code == 201, created.text
    pid = str(created.json()["id"])
    assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
    return pid


async def send(http: httpx.AsyncClient, pid: str, items: list[Any]) -> None:
    # json.dumps escapes NUL and lone surrogates (\\u0000, \\ud800): what any JSON client sends
    response = await http.post(
        f"/api/streaming/pipelines/{pid}/batch",
        content=json.dumps(items).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 202, response.text


def webhook(url: str, **config: Any) -> dict[str, Any]:
    return {
        "type": "webhook",
        "config": {"url": url, "retryPolicy": {"maxRetries": 2, "backoffMs": 50}, **config},
    }


async def settled(http: httpx.AsyncClient, key: str, pid: str, n: int) -> dict[str, Any]:
    """Metrics once every one of the n ingested items was taken and the offset reached n."""
    return await eventually(
        lambda: metrics(http, key, pid),
        lambda m: m["itemsProcessed"] == n and m["committedOffset"] == n,
        timeout=60,
    )


async def dead_letters(settings: Any, pid: str) -> list[tuple[Any, ...]]:
    return await query(
        settings,
        "SELECT stage, first_offset, value::text, error FROM pipeline_dead_letters "
        "WHERE pipeline_id = %s ORDER BY first_offset",
        (pid,),
    )


def once(hook: HookReceiver) -> list[dict[str, Any]]:
    """The accepted bodies, asserting no output was accepted twice (by its webhook-id)."""
    ids = Counter(r["headers"]["webhook-id"] for r in hook.accepted)
    assert [i for i, n in ids.items() if n > 1] == []
    return [r["json"] for r in hook.accepted]


async def process_batch_attempts(temporal: TemporalClient, pid: str) -> list[tuple[str, int]]:
    """(event, attempt) of every process_batch activity that failed or completed in history."""
    history = await temporal.get_workflow_handle(f"pipeline-{pid}").fetch_history()
    scheduled: dict[int, str] = {}
    started: dict[int, int] = {}
    out = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs_s = event.activity_task_started_event_attributes
            started[attrs_s.scheduled_event_id] = attrs_s.attempt
        elif event.event_type in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ):
            attrs_f = (
                event.activity_task_failed_event_attributes
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                else event.activity_task_completed_event_attributes
            )
            if scheduled.get(attrs_f.scheduled_event_id) == "pipeline_process_batch":
                kind = (
                    "failed"
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                    else "ok"
                )
                out.append((kind, started[attrs_f.scheduled_event_id]))
    return out


# ----------------------------------------------------------------------------- issue reproductions


async def test_two_field_group_by_aggregate_feeding_a_webhook_delivers_each_update_once(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        pid = await create(
            http,
            {
                "name": "agent-days",
                "transforms": [
                    {
                        "type": "aggregate",
                        "config": {
                            "groupBy": TWO_FIELDS,
                            "aggregations": [
                                {"field": "tokens", "function": "sum", "alias": "tokens"},
                                {"field": "*", "function": "count", "alias": "runs"},
                            ],
                        },
                    }
                ],
                "destination": webhook(hook.url),
            },
        )
        items = [
            {"agent_id": f"agent-{i % 2}", "date": f"2026-12-0{1 + i % 3}", "tokens": i}
            for i in range(12)
        ]
        await send(http, pid, items)
        m = await settled(http, org.admin_key, pid, 12)
        health = (await http.get(f"/api/streaming/pipelines/{pid}/health")).json()
    bodies = once(hook)
    latest = {(b["agent_id"], b["date"]): b for b in bodies}
    expected: dict[tuple[str, str], list[int]] = {}
    for item in items:
        expected.setdefault((item["agent_id"], item["date"]), []).append(item["tokens"])
    assert {k: (b["tokens"], b["runs"]) for k, b in latest.items()} == {
        k: (sum(v), len(v)) for k, v in expected.items()
    }
    assert m["itemsDelivered"] == len(bodies) and m["deadLetters"] == 0
    assert health["status"] == "healthy", health


async def test_two_field_group_by_tumbling_window_emits_each_window_once(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        pid = await create(
            http,
            {
                "name": "agent-day-windows",
                "transforms": [
                    {
                        "type": "window",
                        "config": {
                            "type": "tumbling",
                            "size": 1000,
                            "groupBy": TWO_FIELDS,
                            "aggregations": [{"field": "*", "function": "count", "alias": "runs"}],
                        },
                    }
                ],
                "destination": webhook(hook.url),
            },
        )
        items = [{"agent_id": f"a{i % 2}", "date": "2026-12-01"} for i in range(10)]
        await send(http, pid, items)
        # the window closes on the workflow's timer, about a second later
        await eventually(
            lambda: asyncio.sleep(0, sum(r["json"]["runs"] for r in hook.accepted)),
            lambda n: n >= 10,
            timeout=30,
        )
        m = await settled(http, org.admin_key, pid, 10)
    bodies = once(hook)
    runs: Counter[str] = Counter()
    for body in bodies:
        assert set(body) == {"windowStart", "windowEnd", "agent_id", "date", "runs"}
        runs[body["agent_id"]] += body["runs"]
    assert runs == {"a0": 5, "a1": 5}
    assert m["deadLetters"] == 0


# ----------------------------------------------------------------------------- a state the database refuses


async def refuse_states(settings: Any, pid: str, condition: str) -> None:
    """A trigger standing in for any value PostgreSQL refuses in the state mirror."""
    await query(
        settings,
        f"CREATE FUNCTION refuse_{pid}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.id = '{pid}' AND NEW.state IS DISTINCT FROM OLD.state AND ({condition}) THEN "
        "RAISE EXCEPTION 'value refused by the database'; END IF; RETURN NEW; END $$",
    )
    await query(
        settings,
        f"CREATE TRIGGER refuse_{pid} BEFORE UPDATE ON pipelines FOR EACH ROW "
        f"EXECUTE FUNCTION refuse_{pid}()",
    )


async def allow_states(settings: Any, pid: str) -> None:
    await query(settings, f"DROP TRIGGER IF EXISTS refuse_{pid} ON pipelines")
    await query(settings, f"DROP FUNCTION IF EXISTS refuse_{pid}()")


def aggregate_to(url: str) -> dict[str, Any]:
    return {
        "name": "refused-state",
        "transforms": [
            {
                "type": "aggregate",
                "config": {
                    "groupBy": ["agent_id"],
                    "aggregations": [{"field": "*", "function": "count", "alias": "runs"}],
                },
            }
        ],
        "destination": webhook(url),
    }


async def test_a_state_the_database_refuses_parks_its_batch_delivers_nothing_twice_and_goes_on(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        pid = await create(http, aggregate_to(hook.url))
        await refuse_states(api.settings, pid, "NEW.state::text LIKE '%reject-me%'")
        try:
            await send(http, pid, [{"agent_id": "a"}])
            await settled(http, org.admin_key, pid, 1)
            # this batch's state would hold the group "reject-me": the save fails
            await send(http, pid, [{"agent_id": "b"}, {"agent_id": "reject-me"}])
            await settled(http, org.admin_key, pid, 3)
            await send(http, pid, [{"agent_id": "a"}])
            m = await settled(http, org.admin_key, pid, 4)
            health = (await http.get(f"/api/streaming/pipelines/{pid}/health")).json()
        finally:
            await allow_states(api.settings, pid)
        attempts = await process_batch_attempts(temporal_client, pid)
    # 0 deliveries of the refused batch, every other output exactly once
    assert [(b["agent_id"], b["runs"]) for b in once(hook)] == [("a", 1), ("a", 2)]
    letters = await dead_letters(api.settings, pid)
    assert [(stage, first, json.loads(v)) for stage, first, v, _ in letters] == [
        ("transform", 2, {"agent_id": "b"}),
        ("transform", 3, {"agent_id": "reject-me"}),
    ]
    assert all("value refused by the database" in error for *_, error in letters)
    assert m["deadLetters"] == 2 and m["itemsDelivered"] == 2
    assert "value refused by the database" in (m["lastError"] or "")
    assert any("value refused by the database" in r for r in health["reasons"]), health
    # not retried: one failed attempt (non-retryable), every attempt a first attempt
    assert [a for a in attempts if a[0] == "failed"] == [("failed", 1)]
    assert all(attempt == 1 for _, attempt in attempts)


async def test_a_state_that_can_never_be_saved_fails_the_pipeline_with_the_cause_in_health(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        pid = await create(http, aggregate_to(hook.url))
        await refuse_states(api.settings, pid, "NEW.committed_offset >= 2")
        try:
            await send(http, pid, [{"agent_id": "a"}])
            await settled(http, org.admin_key, pid, 1)
            await send(http, pid, [{"agent_id": "b"}])  # neither its state nor parking it saves
            row = await eventually(
                lambda: http.get(f"/api/streaming/pipelines/{pid}"),
                lambda r: r.json()["status"] == "failed",
                timeout=60,
            )
            health = (await http.get(f"/api/streaming/pipelines/{pid}/health")).json()
            m = await metrics(http, org.admin_key, pid)
        finally:
            await allow_states(api.settings, pid)
        attempts = await process_batch_attempts(temporal_client, pid)
        history = await temporal_client.get_workflow_handle(f"pipeline-{pid}").fetch_history()
        # the mirror holds the workflow's last recorded state, not the unsaved batch's
        mirror = await query(
            api.settings, "SELECT committed_offset FROM pipelines WHERE id = %s", (pid,)
        )
        failed_bodies = once(hook)
        # fixed: `start` resumes from there and the batch is processed, nothing lost
        assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
        await settled(http, org.admin_key, pid, 2)
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 2)
    assert mirror == [(1,)]
    assert [b["agent_id"] for b in once(hook)] == ["a", "b"]
    assert row.json()["status"] == "failed"
    assert "could not be saved: value refused by the database" in (m["lastError"] or ""), m
    assert health["status"] == "unhealthy"
    assert any(
        r.startswith("pipeline failed:") and "value refused by the database" in r
        for r in health["reasons"]
    ), health
    assert [b["agent_id"] for b in failed_bodies] == ["a"]
    # the batch, then its parking: two failed attempts, each the first and only one
    assert [a for a in attempts if a[0] == "failed"] == [("failed", 1), ("failed", 1)]
    # the failure path replays deterministically
    replayer = Replayer(workflows=[PipelineWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


# ----------------------------------------------------------------------------- poison items


async def to_destination(http: httpx.AsyncClient, name: str, destination: dict[str, Any]) -> str:
    return await create(http, {"name": name, "transforms": [], "destination": destination})


def hundred(poison_at: int, poison: dict[str, Any], good: Any) -> list[dict[str, Any]]:
    return [poison if i == poison_at else good(i) for i in range(100)]


async def assert_one_poison(
    http: httpx.AsyncClient, api: RunningApi, org: Org, pid: str, reason: str
) -> dict[str, Any]:
    m = await settled(http, org.admin_key, pid, 100)
    m = await eventually(
        lambda: metrics(http, org.admin_key, pid),
        lambda m: m["itemsDelivered"] + m["deadLetters"] == 100,
    )
    assert m["itemsDelivered"] == 99 and m["deadLetters"] == 1, m
    letters = await dead_letters(api.settings, pid)
    assert [(stage, first) for stage, first, *_ in letters] == [("delivery", 43)]
    assert reason in letters[0][3], letters[0][3]
    return m


async def test_poison_item_database_nul_and_bad_cast(
    api: RunningApi, org: Org, worker: Services
) -> None:
    schema = await create_table(
        api.settings, org.id, "CREATE TABLE {schema}.runs (id int PRIMARY KEY, name text, n int)"
    )
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        cases = [
            ({"id": 42, "name": "a\x00b", "n": 1}, "\\u0000 (NUL)"),  # refused before sending
            ({"id": 42, "name": "x\ud800", "n": 1}, "lone UTF-16 surrogate"),  # before sending
            ({"id": 42, "name": "x", "n": "not a number"}, "invalid input syntax"),  # bisected
        ]
        for case, (poison, reason) in enumerate(cases):
            await query(api.settings, f'TRUNCATE "{schema}".runs')
            pid = await create(
                http,
                {
                    "name": f"to-table-{case}",
                    "transforms": [],
                    "destination": {
                        "type": "database",
                        "config": {
                            "table": "runs",
                            "operation": "insert",
                            "retryPolicy": {"maxRetries": 0, "backoffMs": 10},
                        },
                    },
                },
            )
            await send(
                http, pid, hundred(42, poison, lambda i: {"id": i, "name": f"run {i}", "n": i})
            )
            await assert_one_poison(http, api, org, pid, reason)
            rows = await query(api.settings, f'SELECT id, name, n FROM "{schema}".runs ORDER BY id')
            assert rows == [(i, f"run {i}", i) for i in range(100) if i != 42]
            listed = await http.get(f"/api/streaming/pipelines/{pid}/dead-letters")
            assert listed.status_code == 200, listed.text
            assert [d["value"] for d in listed.json()["items"]] == [poison]


async def test_poison_item_webhook_refused_with_422(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        hook.refuse = lambda body: body.get("poison") is True
        pid = await to_destination(http, "poison-hook", webhook(hook.url))
        await send(http, pid, hundred(42, {"n": 42, "poison": True}, lambda i: {"n": i}))
        await assert_one_poison(http, api, org, pid, "HTTP 422")
        assert sorted(b["n"] for b in once(hook)) == [i for i in range(100) if i != 42]
        assert len(hook.requests) == 100  # the refused item was sent once, not retried
        # replaying while the receiver still refuses it keeps the dead letter
        replay = (await http.post(f"/api/streaming/pipelines/{pid}/dead-letters/replay")).json()
        assert (replay["redelivered"], replay["failed"]) == (0, 1) and "422" in replay["error"]
        assert len(await dead_letters(api.settings, pid)) == 1
        hook.refuse = None  # fixed on the receiver's side: the replay delivers it
        replay = (await http.post(f"/api/streaming/pipelines/{pid}/dead-letters/replay")).json()
        assert (replay["redelivered"], replay["failed"]) == (1, 0)
    assert [r["json"]["n"] for r in hook.accepted][-1] == 42


async def test_a_refused_item_stays_a_dead_letter_when_a_later_failure_retries_the_batch(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        hook.refuse = lambda body: body["n"] == 3
        hook.fail_after = 5  # after 5 accepted items, one 503: the batch is retried
        pid = await to_destination(http, "refused-then-retried", webhook(hook.url))
        await send(http, pid, [{"n": i} for i in range(10)])
        m = await settled(http, org.admin_key, pid, 10)
        m = await eventually(
            lambda: metrics(http, org.admin_key, pid),
            lambda m: m["itemsDelivered"] + m["deadLetters"] == 10,
        )
    # the retry skipped what the first attempt had done, the refused item included
    assert [b["n"] for b in once(hook)] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [r["json"]["n"] for r in hook.requests].count(3) == 1
    letters = await dead_letters(api.settings, pid)
    assert [(stage, first) for stage, first, *_ in letters] == [("delivery", 4)]
    assert "HTTP 422" in letters[0][3]
    assert (m["itemsDelivered"], m["deadLetters"]) == (9, 1)


async def test_poison_item_analytics_event_over_the_provider_limit(
    api: RunningApi, org: Org, worker: Services
) -> None:
    saas = AnalyticsFake()
    async with (
        serve(saas.app) as url,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        pid = await to_destination(
            http,
            "poison-segment",
            {
                "type": "analytics",
                "config": {"provider": "segment", "writeKey": "seg-write-key", "baseUrl": url},
            },
        )

        def good(i: int) -> dict[str, Any]:
            return {"event": "run", "agent_id": f"agent-{i}", "n": i}

        await send(http, pid, hundred(42, {**good(42), "blob": "x" * 40_000}, good))
        await assert_one_poison(http, api, org, pid, "over the provider's limit")
    delivered = sorted(m["properties"]["n"] for m in saas.segment.values())
    assert delivered == [i for i in range(100) if i != 42]
    sent = [m["messageId"] for r in saas.requests for m in r.body["batch"]]
    assert len(sent) == len(set(sent)) == 99  # each event sent exactly once


async def test_poison_item_notification_refused_by_slack(
    api: RunningApi, org: Org, worker: Services
) -> None:
    fake = SlackFake()
    async with (
        serve(fake.app) as url,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        pid = await to_destination(
            http,
            "poison-slack",
            {
                "type": "notification",
                "config": {
                    "channel": "slack",
                    "webhook": url + HOOK_PATH,
                    "template": "{{text}}",
                    "maxMessages": 100,
                },
            },
        )
        # an empty text: Slack answers 400 no_text
        await send(http, pid, hundred(42, {"text": ""}, lambda i: {"text": f"run {i}"}))
        await assert_one_poison(http, api, org, pid, "no_text")
    assert sorted(m["text"] for m in fake.messages) == sorted(
        f"run {i}" for i in range(100) if i != 42
    )


# ----------------------------------------------------------------------------- property-based, durable

TEXT = st.one_of(
    st.text(st.characters(codec=None, min_codepoint=0), max_size=4),
    st.sampled_from(["\x00", "a\x00", "\ud800", "😀", "שלום", "a.b c", ""]),
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.sampled_from([-0.0, 1.5, 1.7976931348623157e308, 5e-324]),
    TEXT,
)
GROUP_PATHS = ["agent", "the day", "meta.region"]


@st.composite
def stream(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    group_by = draw(st.lists(st.sampled_from(GROUP_PATHS), min_size=1, max_size=3, unique=True))
    items = []
    for i in range(draw(st.integers(min_value=1, max_value=12))):
        items.append(
            {
                "id": i,
                "label": draw(TEXT),
                "agent": draw(st.one_of(SCALAR, st.sampled_from(["a", "b"]))),
                "the day": draw(st.one_of(SCALAR, st.just("2026-12-01"))),
                "meta": draw(st.one_of(st.none(), st.fixed_dictionaries({"region": SCALAR}))),
                "a.b": draw(SCALAR),
            }
        )
    return group_by, items


def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=stream())
async def test_any_items_through_real_pipelines_are_delivered_exactly_once(
    api: RunningApi, org: Org, worker: Services, case: tuple[list[str], list[dict[str, Any]]]
) -> None:
    group_by, items = case
    table = f"labels_{uuid.uuid4().hex[:8]}"
    schema = await create_table(
        api.settings, org.id, f"CREATE TABLE {{schema}}.{table} (id int PRIMARY KEY, label text)"
    )
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        to_hook = await create(
            http,
            {
                "name": "any-to-hook",
                "transforms": [
                    {
                        "type": "aggregate",
                        "config": {
                            "groupBy": group_by,
                            "aggregations": [{"field": "*", "function": "count", "alias": "n"}],
                        },
                    }
                ],
                "destination": webhook(hook.url),
            },
        )
        to_table = await create(
            http,
            {
                "name": "any-to-table",
                "transforms": [
                    {"type": "map", "config": {"expression": {"id": "id", "label": "label"}}}
                ],
                "destination": {
                    "type": "database",
                    "config": {"table": table, "operation": "insert"},
                },
            },
        )
        half = len(items) // 2
        for pid in (to_hook, to_table):
            for part in (items[:half], items[half:]):
                if part:
                    await send(http, pid, part)
        for pid in (to_hook, to_table):
            await settled(http, org.admin_key, pid, len(items))
        m_table = await eventually(
            lambda: metrics(http, org.admin_key, to_table),
            lambda m: m["itemsDelivered"] + m["deadLetters"] == len(items),
        )
    # webhook: each output once; the last row of each group counts its items exactly
    latest = {group_of(b, group_by): b["n"] for b in once(hook)}
    assert latest == dict(Counter(group_of(v, group_by) for v in items))
    # table: every storable item exactly once, every other one a dead letter with the reason
    rows = await query(api.settings, f'SELECT id, label FROM "{schema}".{table} ORDER BY id')
    good = [(v["id"], v["label"]) for v in items if storable(v["label"])]
    assert rows == good
    letters = await dead_letters(api.settings, to_table)
    assert [first - 1 for _, first, *_ in letters] == [
        v["id"] for v in items if not storable(v["label"])
    ]
    assert all("PostgreSQL cannot store" in error for *_, error in letters)
    assert m_table["deadLetters"] == len(letters)


async def test_a_large_state_with_nul_group_values_goes_by_reference_and_keeps_counting(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        pid = await create(
            http,
            {
                "name": "nul-groups",
                "transforms": [
                    {
                        "type": "aggregate",
                        "config": {
                            "groupBy": ["g", "h"],
                            "aggregations": [{"field": "*", "function": "count", "alias": "n"}],
                        },
                    },
                    {"type": "batch", "config": {"size": 1000, "timeout": 100}},
                ],
                "destination": webhook(hook.url),
            },
        )
        items = [{"g": f"grp\x00{i % 200}", "h": "\ud83d\ude00"} for i in range(400)]
        await send(http, pid, items[:200])
        await settled(http, org.admin_key, pid, 200)
        await send(http, pid, items[200:])
        await settled(http, org.admin_key, pid, 400)
        await eventually(
            lambda: asyncio.sleep(0, sum(len(b["json"]["items"]) for b in hook.accepted)),
            lambda n: n == 400,
        )
        [(ref, escaped)] = await query(
            api.settings,
            "SELECT state->>'chain_state_ref', state->>'chain_state_escaped' FROM pipelines "
            "WHERE id = %s",
            (pid,),
        )
    assert ref is not None and escaped == "true"  # over 4 KB: kept in pipeline_chain_states
    latest = {r["g"]: r["n"] for body in once(hook) for r in body["items"]}
    assert latest == {f"grp\x00{i}": 2 for i in range(200)}
