"""Shared fixtures: one embedded Postgres and one Temporal dev server per session; a worker on a
fresh task queue, an API on a real uvicorn server and a fresh organisation per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from temporalio.client import Client as TemporalClient

import deeployd
from api.main import create_app
from deeployd import migrations, temporal
from deeployd.db import Database
from deeployd.devstack import EmbeddedPostgres, free_port, start_temporal_dev_server, stop_process
from deeployd.models.organization import Scope
from deeployd.orgs import create_api_key, get_or_create_org
from deeployd.security import SecretBox
from deeployd.services import Services
from deeployd.settings import Settings
from worker import build_worker

REPO = Path(__file__).resolve().parent.parent

# Browser fixtures (`browser`, `page`) for the console's end-to-end tests.
pytest_plugins = ["tests.browser"]


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Real PostgreSQL and a real Temporal server for the whole session."""
    data = tmp_path_factory.mktemp("stack")
    postgres = None
    temporal_process = None
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        postgres = EmbeddedPostgres(data / "pg")
        database_url = postgres.url
    temporal_address = os.environ.get("TEMPORAL_ADDRESS")
    if not temporal_address:
        port = free_port()
        temporal_process = start_temporal_dev_server(
            port=port, ui_port=None, db_file=None, log_file=data / "temporal.log"
        )
        temporal_address = f"127.0.0.1:{port}"
    migrations.upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_address,
        secret_key=SecretBox.generate_key(),
        allow_private_urls=True,
        data_dir=data,
        log_json=False,
        sse_ping_seconds=15,
    )
    try:
        yield settings
    finally:
        if temporal_process is not None:
            stop_process(temporal_process)
        if postgres is not None:
            postgres.stop()


@pytest.fixture(scope="session")
def external_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second PostgreSQL server on loopback TCP (not the platform's): its DSN."""
    from tests.external_postgres import ExternalPostgres

    server = ExternalPostgres(tmp_path_factory.mktemp("external-pg") / "data")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def temporal_client(base_settings: Settings) -> TemporalClient:
    client = await temporal.connect(base_settings)
    await temporal.ensure_search_attributes(client)
    return client


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test settings: a fresh task queue so no test sees another's workflows."""
    return base_settings.model_copy(update={"task_queue": f"test-{uuid.uuid4().hex[:12]}"})


@pytest.fixture
async def worker(settings: Settings, temporal_client: TemporalClient) -> AsyncIterator[Services]:
    """A worker in this process on the test's task queue; yields its shared services."""
    services = await Services.open(settings, with_temporal=False)
    services.temporal = temporal_client
    try:
        async with build_worker(temporal_client, services, settings.task_queue):
            yield services
    finally:
        await services.close()


@dataclass
class RunningApi:
    url: str
    settings: Settings
    app: object


@pytest.fixture
async def api(settings: Settings, temporal_client: TemporalClient) -> AsyncIterator[RunningApi]:
    """The real API on a real uvicorn server on a free loopback port."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=2
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield RunningApi(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


@dataclass
class Org:
    id: str
    name: str
    admin_key: str


async def make_org(settings: Settings, scopes: tuple[str, ...] = (Scope.admin,)) -> Org:
    db = Database(settings.require_database_url(), pool_size=1)
    try:
        async with db.session() as session:
            org = await get_or_create_org(session, f"test-{uuid.uuid4().hex[:10]}")
            _, key = await create_api_key(session, org.id, "test admin", list(scopes))
    finally:
        await db.close()
    return Org(org.id, org.name, key)


@pytest.fixture
async def org(settings: Settings) -> Org:
    """A fresh organisation with an admin key: tests never see each other's data."""
    return await make_org(settings)


@pytest.fixture
async def client(api: RunningApi, org: Org) -> AsyncIterator[deeployd.Client]:
    async with deeployd.Client(api.url, org.admin_key) as sdk:
        yield sdk


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (worker, API) use these settings."""
    return {
        "DATABASE_URL": settings.require_database_url(),
        "TEMPORAL_ADDRESS": settings.require_temporal_address(),
        "DEEPLOYD_TASK_QUEUE": settings.task_queue,
        "DEEPLOYD_SECRET_KEY": settings.secret_key or "",
        "DEEPLOYD_ALLOW_PRIVATE_URLS": "true" if settings.allow_private_urls else "false",
        "DEEPLOYD_LOG_JSON": "false",
    }


@contextlib.contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """`python worker.py` as a separate process, for tests that kill it."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "worker.py")],
        env={**os.environ, **settings_env(settings)},
        cwd=REPO,
    )
    try:
        yield process
    finally:
        stop_process(process, timeout=10)
