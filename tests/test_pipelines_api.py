"""Pipeline API: CRUD, exact-path config errors, backpressure, webhook-source signatures,
organisation isolation — over the real API, Postgres and (where started) Temporal."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deeployd.errors import Invalid
from deeployd.models.pipeline import PipelineStatus
from deeployd.pipelines import health
from deeployd.pipelines.config import config_errors, validate_pipeline_body
from deeployd.pipelines.destinations import DESTINATIONS, ConfigError
from deeployd.pipelines.signing import signed_headers
from deeployd.pipelines.transforms import TRANSFORMS
from deeployd.services import Services
from tests.conftest import Org, RunningApi, make_org
from tests.pipeline_helpers import auth, create_table, query

WEBHOOK_DEST = {
    "type": "webhook",
    "config": {
        "url": "http://127.0.0.1:9/hook",
        "headers": {"Authorization": "Bearer ${secrets.API_KEY}"},
        "retryPolicy": {"maxRetries": 3, "backoffMs": 1000},
    },
}


def pipeline_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "agent-events-to-hook",
        "source": {"type": "webhook"},
        "transforms": [
            {"type": "filter", "config": {"field": "status", "operator": "eq", "value": "ok"}},
            {"type": "map", "config": {"expression": {"id": "id", "who": "upper(user.name)"}}},
        ],
        "destination": WEBHOOK_DEST,
    }
    body.update(overrides)
    return body


async def test_create_list_get_update_delete_pipeline(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        created = await http.post("/api/streaming/pipelines", json=pipeline_body())
        assert created.status_code == 201, created.text
        pipeline = created.json()
        assert pipeline["status"] == "created"
        assert pipeline["workflowId"] == f"pipeline-{pipeline['id']}"
        # Secret references are shown as references; options get their documented defaults.
        assert pipeline["destination"]["config"]["headers"] == {
            "Authorization": "Bearer ${secrets.API_KEY}"
        }
        assert pipeline["options"] == {
            "batchSize": 1000,
            "maxPending": 100000,
            "maxWaitMs": 1000,
            "retentionHours": 24.0,
        }
        for i in range(2):
            assert (
                await http.post("/api/streaming/pipelines", json=pipeline_body(name=f"p{i}"))
            ).status_code == 201

        page = (await http.get("/api/streaming/pipelines", params={"limit": 2})).json()
        assert page["total"] == 3 and len(page["items"]) == 2
        rest = (await http.get("/api/streaming/pipelines", params={"limit": 2, "offset": 2})).json()
        assert len(rest["items"]) == 1
        listed = {p["id"] for p in page["items"] + rest["items"]}
        assert pipeline["id"] in listed

        got = (await http.get(f"/api/streaming/pipelines/{pipeline['id']}")).json()
        assert got["transforms"] == pipeline_body()["transforms"]

        updated = await http.put(
            f"/api/streaming/pipelines/{pipeline['id']}",
            json=pipeline_body(name="renamed", transforms=[], options={"batchSize": 50}),
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["name"] == "renamed"
        assert updated.json()["transforms"] == []
        assert updated.json()["options"]["batchSize"] == 50

        assert (await http.delete(f"/api/streaming/pipelines/{pipeline['id']}")).status_code == 204
        assert (await http.get(f"/api/streaming/pipelines/{pipeline['id']}")).status_code == 404


async def test_config_errors_are_422_naming_the_exact_path(api: RunningApi, org: Org) -> None:
    await create_table(api.settings, org.id, "CREATE TABLE {schema}.metrics (id int PRIMARY KEY)")
    cases = [
        (
            pipeline_body(
                transforms=[
                    {"type": "filter", "config": {"field": "a", "operator": "eq", "value": 1}},
                    {
                        "type": "map",
                        "config": {
                            "expression": {"fullName": 'concatt(user.firstName, " ", user.last)'}
                        },
                    },
                ]
            ),
            "transforms[1].config.expression.fullName: unknown function 'concatt'",
        ),
        (
            pipeline_body(source={"type": "carrier_pigeon"}),
            "source.type: unknown source type 'carrier_pigeon'",
        ),
        (
            pipeline_body(
                destination={"type": "webhook", "config": {"url": "ftp://example.com/x"}}
            ),
            "destination.config.url: only http and https URLs are allowed",
        ),
        (
            pipeline_body(
                destination={
                    "type": "webhook",
                    "config": {"url": "https://example.com", "retryPolicy": {"maxRetries": -1}},
                }
            ),
            "destination.config.retryPolicy.maxRetries: must be an integer from 0 to 20",
        ),
        (
            pipeline_body(
                destination={
                    "type": "database",
                    "config": {"table": "nope", "operation": "insert"},
                }
            ),
            "destination.config.table: table",
        ),
        (
            pipeline_body(
                destination={
                    "type": "database",
                    "config": {"table": "metrics", "operation": "upsert", "conflictFields": ["x"]},
                }
            ),
            "destination.config.conflictFields[0]: metrics has no column 'x'",
        ),
        (
            pipeline_body(source={"type": "webhook", "secret": "plain-text"}),
            "source.secret: must be a secret reference",
        ),
        (pipeline_body(options={"batchSize": 0}), "options.batchSize:"),
    ]
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        for body, expected in cases:
            response = await http.post("/api/streaming/pipelines", json=body)
            assert response.status_code == 422, (expected, response.text)
            errors = response.json()["errors"]
            assert any(e.startswith(expected) for e in errors), (expected, errors)
        # The same validation guards PUT.
        pipeline = (await http.post("/api/streaming/pipelines", json=pipeline_body())).json()
        response = await http.put(f"/api/streaming/pipelines/{pipeline['id']}", json=cases[0][0])
        assert response.status_code == 422
        assert response.json()["errors"] == [cases[0][1]]
        # A valid database destination passes the real-table check.
        ok = await http.post(
            "/api/streaming/pipelines",
            json=pipeline_body(
                destination={
                    "type": "database",
                    "config": {"table": "metrics", "operation": "upsert", "conflictFields": ["id"]},
                }
            ),
        )
        assert ok.status_code == 201, ok.text


async def test_backpressure_answers_429_with_retry_after_and_drops_nothing(
    api: RunningApi, org: Org
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        pipeline = (
            await http.post(
                "/api/streaming/pipelines", json=pipeline_body(options={"maxPending": 5})
            )
        ).json()
        pid = pipeline["id"]
        accepted = await http.post(
            f"/api/streaming/pipelines/{pid}/batch", json=[{"id": i} for i in range(5)]
        )
        assert accepted.status_code == 202
        assert accepted.json()["offsets"] == [1, 2, 3, 4, 5]
        refused = await http.post(f"/api/streaming/pipelines/{pid}/process", json={"id": 5})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        refused_batch = await http.post(
            f"/api/streaming/pipelines/{pid}/batch", json={"items": [{"id": 6}]}
        )
        assert refused_batch.status_code == 429
        metrics = (await http.get(f"/api/streaming/pipelines/{pid}/metrics")).json()
        assert metrics["pending"] == 5
        assert metrics["backpressure"] == 1.0
        health = (await http.get(f"/api/streaming/pipelines/{pid}/health")).json()
        assert health["status"] == "unhealthy"
        assert any("backpressure" in r for r in health["reasons"])
        too_many = await http.post(
            f"/api/streaming/pipelines/{pid}/batch", json=[{"i": i} for i in range(10_001)]
        )
        assert too_many.status_code == 422
        not_object = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=[{"a": 1}, 2])
        assert not_object.status_code == 422
        assert not_object.json()["errors"] == ["[1]: an item must be a JSON object"]
    stored = await query(
        api.settings,
        "SELECT \"offset\", value->>'id' FROM pipeline_items WHERE pipeline_id = %s "
        'ORDER BY "offset"',
        (pid,),
    )
    assert stored == [(i + 1, str(i)) for i in range(5)]


async def test_webhook_source_requires_a_valid_standard_webhooks_signature(
    api: RunningApi, org: Org
) -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        assert (
            await http.post("/api/secrets", json={"name": "HOOK_SECRET", "value": secret})
        ).status_code == 201
        signed = (
            await http.post(
                "/api/streaming/pipelines",
                json=pipeline_body(source={"type": "webhook", "secret": "${secrets.HOOK_SECRET}"}),
            )
        ).json()
        open_hook = (await http.post("/api/streaming/pipelines", json=pipeline_body())).json()
    body = b'{"id": 1, "status": "ok"}'
    hook = f"/api/streaming/hooks/{signed['id']}"
    async with httpx.AsyncClient(base_url=api.url) as anon:
        unsigned = await anon.post(hook, content=body)
        assert unsigned.status_code == 401
        wrong_key = signed_headers("whsec_" + base64.b64encode(b"x" * 32).decode(), "msg_1", body)
        assert (await anon.post(hook, content=body, headers=wrong_key)).status_code == 401
        stale = signed_headers(secret, "msg_1", body, now=time.time() - 600)
        assert (await anon.post(hook, content=body, headers=stale)).status_code == 401
        tampered = signed_headers(secret, "msg_1", body)
        assert (await anon.post(hook, content=b'{"id": 2}', headers=tampered)).status_code == 401

        good = await anon.post(hook, content=body, headers=signed_headers(secret, "msg_1", body))
        assert good.status_code == 202, good.text
        # A sender's retry of the same message id is acknowledged but not appended twice.
        again = await anon.post(hook, content=body, headers=signed_headers(secret, "msg_1", body))
        assert again.status_code == 202
        assert again.json()["offsets"] == good.json()["offsets"] == [1]

        # Without a secret, the hook takes plain JSON (an object or an array of objects).
        plain = await anon.post(
            f"/api/streaming/hooks/{open_hook['id']}", json=[{"a": 1}, {"a": 2}]
        )
        assert plain.status_code == 202
        assert plain.json()["offsets"] == [1, 2]
        assert (await anon.post("/api/streaming/hooks/pl_missing", json={})).status_code == 404
    rows = await query(
        api.settings, "SELECT count(*) FROM pipeline_items WHERE pipeline_id = %s", (signed["id"],)
    )
    assert rows == [(1,)]


async def test_another_organisations_pipeline_is_404_everywhere(
    api: RunningApi, org: Org, worker: Services
) -> None:
    other = await make_org(api.settings)
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        pipeline = (await http.post("/api/streaming/pipelines", json=pipeline_body())).json()
    pid = pipeline["id"]
    async with httpx.AsyncClient(base_url=api.url, headers=auth(other.admin_key)) as intruder:
        for method, path, body in [
            ("GET", f"/api/streaming/pipelines/{pid}", None),
            ("PUT", f"/api/streaming/pipelines/{pid}", pipeline_body()),
            ("DELETE", f"/api/streaming/pipelines/{pid}", None),
            ("POST", f"/api/streaming/pipelines/{pid}/start", None),
            ("POST", f"/api/streaming/pipelines/{pid}/pause", None),
            ("POST", f"/api/streaming/pipelines/{pid}/stop", None),
            ("POST", f"/api/streaming/pipelines/{pid}/process", {"id": 1}),
            ("POST", f"/api/streaming/pipelines/{pid}/batch", [{"id": 1}]),
            ("GET", f"/api/streaming/pipelines/{pid}/metrics", None),
            ("GET", f"/api/streaming/pipelines/{pid}/health", None),
            ("POST", f"/api/streaming/pipelines/{pid}/checkpoints", None),
            ("GET", f"/api/streaming/pipelines/{pid}/checkpoints", None),
            ("GET", f"/api/streaming/pipelines/{pid}/dead-letters", None),
            ("GET", f"/api/streaming/pipelines/{pid}/stream", None),
        ]:
            response = await intruder.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.status_code)
        listed = (await intruder.get("/api/streaming/pipelines")).json()
        assert listed["total"] == 0
        stats = (await intruder.get("/api/streaming/stats")).json()
        assert stats["pipelines"] == 0
    rows = await query(
        api.settings, "SELECT count(*) FROM pipeline_items WHERE pipeline_id = %s", (pid,)
    )
    assert rows == [(0,)]


async def test_private_destination_urls_are_refused_unless_allowed() -> None:
    body = pipeline_body(destination={"type": "webhook", "config": {"url": "http://127.0.0.1/x"}})
    body["options"] = {}
    with pytest.raises(Invalid) as refused:
        await validate_pipeline_body(body, "org_x", None, allow_private_urls=False)
    [error] = refused.value.errors
    assert error.loc == ("body", "destination", "config", "url")
    assert "non-public address 127.0.0.1" in error.msg
    await validate_pipeline_body(body, "org_x", None, allow_private_urls=True)


def test_unknown_plugin_types_list_exactly_what_the_registries_hold() -> None:
    body = pipeline_body(
        transforms=[{"type": "teleport", "config": {}}],
        destination={"type": "carrier_pigeon", "config": {}},
    )
    errors = {e.loc: e.msg for e in config_errors(body)}
    assert errors[("body", "transforms", 0, "type")].endswith(
        "expected one of: " + ", ".join(TRANSFORMS.names())
    )
    assert errors[("body", "destination", "type")] == (
        "unknown destination type 'carrier_pigeon'; one of " + ", ".join(sorted(DESTINATIONS))
    )
    assert {"filter", "map", "aggregate", "window", "batch"} == set(TRANSFORMS)
    assert {"webhook", "database", "analytics", "notification"} == set(DESTINATIONS)


def test_a_config_error_is_a_located_domain_refusal() -> None:
    err = ConfigError(("config", "url"), "is required")
    assert isinstance(err, Invalid)
    assert str(err) == "config.url: is required"
    located = err.with_prefix("body", "destination")
    assert isinstance(located, ConfigError)
    assert [(e.loc, e.msg) for e in located.errors] == [
        (("body", "destination", "config", "url"), "is required")
    ]


_METRICS = st.fixed_dictionaries(
    {
        "backpressure": st.floats(min_value=0, max_value=1),
        "lastErrorAt": st.one_of(st.none(), st.integers(min_value=0, max_value=10**13)),
        "lastError": st.one_of(st.none(), st.text(max_size=20)),
    }
)


_HEALTH_INPUTS = st.fixed_dictionaries(
    {
        "status": st.sampled_from(list(PipelineStatus)),
        "error": st.one_of(st.none(), st.text(max_size=20)),
        "workflow_missing": st.booleans(),
        "metrics": _METRICS,
        "waiting_dead_letters": st.integers(min_value=0, max_value=10**6),
        "now_ms": st.integers(min_value=0, max_value=10**13),
    }
)


@given(_HEALTH_INPUTS)
def test_health_is_unhealthy_exactly_when_a_hard_rule_holds(case: dict[str, Any]) -> None:
    verdict = health.assess(**case)
    status, metrics, waiting = case["status"], case["metrics"], case["waiting_dead_letters"]
    hard = (
        status == PipelineStatus.failed or case["workflow_missing"] or metrics["backpressure"] >= 1
    )
    recent_error = (
        bool(metrics["lastErrorAt"]) and case["now_ms"] - metrics["lastErrorAt"] < 300_000
    )
    soft = (
        0.8 <= metrics["backpressure"] < 1
        or recent_error
        or waiting > 0
        or status == PipelineStatus.paused
    )
    expected = "unhealthy" if hard else "degraded" if soft else "healthy"
    assert verdict.status == expected
    assert (verdict.reasons == []) == (expected == "healthy")
    if waiting:
        assert f"{waiting} dead letter(s) waiting for replay" in verdict.reasons
