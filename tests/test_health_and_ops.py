"""Health, Prometheus metrics, event retention, and the production compose file."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import yaml
from temporalio.client import Client as TemporalClient

from deeployd.services import Services
from deeployd.settings import Settings
from tests.conftest import Org, RunningApi
from workflows.retention import EventRetentionWorkflow, RetentionInput

REPO = Path(__file__).resolve().parent.parent


async def test_healthz_reports_database_and_temporal_without_auth(api: RunningApi) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": {"ok": True}, "temporal": {"ok": True}},
    }


async def test_healthz_is_503_when_temporal_is_unreachable(settings: Settings) -> None:
    from tests.conftest import free_port

    broken = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    from api.main import create_app

    app = create_app(broken)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": True}
    assert response.json()["checks"]["temporal"]["ok"] is False


async def test_prometheus_metrics_count_requests_and_live_subscribers(
    api: RunningApi, org: Org
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        await http.get("/api/me", headers={"Authorization": f"Bearer {org.admin_key}"})
        async with http.stream(
            "GET", "/api/events/stream", headers={"Authorization": f"Bearer {org.admin_key}"}
        ) as stream:
            await stream.aiter_lines().__anext__()  # the stream is open
            during = (await http.get("/metrics")).text
        await asyncio.sleep(0.2)
        after = (await http.get("/metrics")).text
    assert 'deeployd_http_requests_total{method="GET",route="/api/me",status="200"}' in during
    assert "deeployd_http_request_seconds_bucket" in during
    live = [line for line in during.splitlines() if line.startswith("deeployd_sse_subscribers ")]
    gone = [line for line in after.splitlines() if line.startswith("deeployd_sse_subscribers ")]
    assert float(live[0].split()[1]) >= 1
    assert float(gone[0].split()[1]) == float(live[0].split()[1]) - 1


async def test_retention_workflow_prunes_only_old_events(
    worker: Services, org: Org, settings: Settings, temporal_client: TemporalClient
) -> None:
    stream = f"run:{uuid.uuid4().hex}"
    old_id = await worker.publisher.publish(org.id, stream, "old", {})
    new_id = await worker.publisher.publish(org.id, stream, "new", {})
    async with worker.db.pool.connection() as conn:
        await conn.execute(
            "UPDATE events SET created_at = now() - interval '10 days' WHERE id = %s", (old_id,)
        )
    deleted = await temporal_client.execute_workflow(
        EventRetentionWorkflow.run,
        RetentionInput(max_age_hours=24 * 7),
        id=f"retention-test-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
    )
    async with worker.db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id FROM events WHERE stream = %s ORDER BY id", (stream,)
        )
        remaining = [row[0] for row in await cursor.fetchall()]
    assert deleted >= 1
    assert remaining == [new_id]


def test_compose_file_parses_and_only_sets_known_settings() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "temporal", "temporal-ui", "api", "worker"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["api"]["build"] and services["worker"]["build"]

    known = {"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
    for name, field in Settings.model_fields.items():
        known.add(f"DEEPLOYD_{name.upper()}")
        del field
    for name in ("api", "worker", "migrate"):
        env = services[name].get("environment", {})
        keys = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        unknown = set(keys) - known
        assert not unknown, f"{name} sets variables Settings does not know: {unknown}"
    assert (REPO / "Dockerfile").exists()


def test_readme_documents_every_environment_variable() -> None:
    readme = (REPO / "README.md").read_text()
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.append(str(choices[0]) if choices else f"DEEPLOYD_{name.upper()}")
    missing = [n for n in names if f"`{n}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"
