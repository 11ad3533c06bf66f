"""kill -9 of each process — worker, API, PostgreSQL, Temporal — during a pipeline load with an
SSE stream open; the process is started again and:

- nothing is lost and nothing counted twice (the destination table has the exact totals);
- every answer during the outage is a 2xx or a JSON 503 with Retry-After, within the client's
  timeout (no hangs), and the keep-alive client never sees a reset (only the API's own death
  can break a connection, and only then);
- the SSE reader, reconnecting with Last-Event-ID, got every event of the stream exactly once.

These tests own a PostgreSQL and a Temporal dev server of their own (killing the session's would
break the other tests); the API and the worker run as separate processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deeployd import migrations, temporal
from deeployd.devstack import (
    EmbeddedPostgres,
    free_port,
    start_temporal_dev_server,
    stop_process,
    wait_for_port,
)
from deeployd.sdk.sse import parse_sse
from deeployd.security import SecretBox
from deeployd.settings import Settings
from tests.conftest import REPO, Org, RunningApi, make_org, settings_env, worker_process
from tests.pipeline_helpers import auth, create_table, query

TOTAL = 3000
BATCH = 100
GROUPS = 50
PACE = 0.25  # seconds between batches: the load spans the outage
CLIENT_TIMEOUT = httpx.Timeout(10.0)  # the bound: an answer that takes longer fails the test
# A quiet stream (no worker sending metrics) still gets a ping every sse_ping_seconds (15 s).
STREAM_READ_TIMEOUT = 20.0


def item(i: int) -> dict[str, int]:
    return {"id": i, "grp": i % GROUPS, "amount": i % 7}


def expected_totals() -> dict[int, tuple[int, int]]:
    totals: dict[int, tuple[int, int]] = {}
    for i in range(TOTAL):
        row = item(i)
        amount, count = totals.get(row["grp"], (0, 0))
        totals[row["grp"]] = (amount + row["amount"], count + 1)
    return totals


class Stack:
    """PostgreSQL, Temporal, one API process and one worker process, each killable."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.postgres = EmbeddedPostgres(data / "pg")
        migrations.upgrade(self.postgres.url)
        self.temporal_port = free_port()
        self.temporal = self._start_temporal()
        self.settings = Settings(
            database_url=self.postgres.url,
            temporal_address=f"127.0.0.1:{self.temporal_port}",
            secret_key=SecretBox.generate_key(),
            allow_private_urls=True,
            data_dir=data,
            log_json=False,
            task_queue=f"faults-{uuid.uuid4().hex[:8]}",
        )
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def _start_temporal(self) -> subprocess.Popen[bytes]:
        return start_temporal_dev_server(
            port=self.temporal_port,
            ui_port=None,
            db_file=self.data / "temporal.db",  # the history outlives a kill
            log_file=self.data / "temporal.log",
        )

    def _env(self) -> dict[str, str]:
        return {**os.environ, **settings_env(self.settings), "DEEPLOYD_LOG_LEVEL": "INFO"}

    def start_api(self) -> None:
        log = (self.data / "api.log").open("ab")
        self.api = subprocess.Popen(
            [sys.executable, "-m", "deeployd.cli", "api", "--port", str(self.api_port)],
            env=self._env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port("127.0.0.1", self.api_port, timeout=60, process=self.api)

    def start_worker(self) -> None:
        log = (self.data / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [sys.executable, str(REPO / "worker.py")],
            env=self._env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, part: str) -> None:
        if part == "postgres":
            pid = self.postgres.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            return
        process = {"api": self.api, "worker": self.worker, "temporal": self.temporal}[part]
        assert process is not None
        process.kill()
        process.wait()

    def restart(self, part: str) -> None:
        if part == "postgres":
            deadline = time.monotonic() + 60
            while True:  # the old backends release shared memory as they notice the death
                try:
                    self.postgres.restart()
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        elif part == "temporal":
            self.temporal = self._start_temporal()
        elif part == "api":
            self.start_api()
        else:
            self.start_worker()

    def stop_services(self) -> None:
        for process in (self.api, self.worker):
            if process is not None:
                stop_process(process, timeout=10)
        self.api = self.worker = None

    def close(self) -> None:
        self.stop_services()
        stop_process(self.temporal)
        self.postgres.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    own = Stack(tmp_path_factory.mktemp("faults"))

    async def register() -> None:
        client = await temporal.connect(own.settings)
        await temporal.ensure_search_attributes(client)

    try:
        asyncio.run(register())
        yield own
    finally:
        own.close()


@dataclass
class Observed:
    """Every answer the clients got, and what broke."""

    answers: list[tuple[str, int, float]] = field(default_factory=list)  # what, status, seconds
    bad: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)

    def check(self, what: str, response: httpx.Response, elapsed: float) -> None:
        self.answers.append((what, response.status_code, elapsed))
        if response.status_code < 300:
            return
        if response.status_code == 503:
            body = response.json()  # JSON, or this raises
            if "Retry-After" in response.headers and {"error", "retryAfter"} <= set(body):
                return
        self.bad.append(f"{what}: {response.status_code} {response.text[:200]}")

    def outage_seconds(self) -> list[float]:
        return [elapsed for _, status, elapsed in self.answers if status == 503]


class Client:
    """One keep-alive client; retries 503s and (only while the API is dead) refused connects."""

    def __init__(self, stack: Stack, key: str, observed: Observed) -> None:
        self.stack = stack
        self.http = httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=CLIENT_TIMEOUT)
        self.observed = observed
        self.api_dead = False

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        while True:
            started = time.monotonic()
            try:
                response = await self.http.request(method, url, **kw)
            except httpx.TransportError as exc:
                if not self.api_dead:
                    self.observed.transport_errors.append(f"{method} {url}: {exc!r}")
                await asyncio.sleep(0.2)
                continue
            self.observed.check(f"{method} {url}", response, time.monotonic() - started)
            if response.status_code in (429, 503):
                await asyncio.sleep(0.2)
                continue
            return response

    async def close(self) -> None:
        await self.http.aclose()


async def load(client: Client, pid: str, sent: list[int]) -> None:
    """Push TOTAL items in batches; a batch is retried with its Idempotency-Key until accepted."""
    for first in range(0, TOTAL, BATCH):
        batch = [item(i) for i in range(first, first + BATCH)]
        response = await client.request(
            "POST",
            f"/api/streaming/pipelines/{pid}/batch",
            json=batch,
            headers={"Idempotency-Key": f"batch-{first}"},
        )
        assert response.status_code == 202, response.text
        sent.append(first + BATCH)
        await asyncio.sleep(PACE)


async def read_stream(client: Client, pid: str, ids: list[int], stop: asyncio.Event) -> int:
    """Follow the pipeline's SSE stream, reconnecting with Last-Event-ID; returns reconnects."""
    reconnects = -1
    while not stop.is_set():
        reconnects += 1
        headers = {"Last-Event-ID": str(ids[-1] if ids else 0)}
        try:
            async with client.http.stream(
                "GET",
                f"/api/streaming/pipelines/{pid}/stream",
                headers=headers,
                timeout=httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT),
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    client.observed.check("GET stream", response, 0.0)
                    await asyncio.sleep(0.2)
                    continue
                async for event_id, _data, _retry in parse_sse(response.aiter_lines()):
                    if event_id:
                        ids.append(int(event_id))
                    if stop.is_set():
                        break
        except httpx.TransportError as exc:
            if not client.api_dead:
                client.observed.transport_errors.append(f"stream: {exc!r}")
            await asyncio.sleep(0.2)
    return reconnects


async def pipeline_metrics(client: Client, pid: str) -> dict[str, Any]:
    response = await client.request("GET", f"/api/streaming/pipelines/{pid}/metrics")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def until(probe: Any, done: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not reached in {timeout}s: {value}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("part", ["worker", "api", "postgres", "temporal"])
async def test_kill_minus_9_during_a_load_loses_nothing_and_answers_cleanly(
    stack: Stack, part: str
) -> None:
    org = await make_org(stack.settings)
    schema = await create_table(
        stack.settings,
        org.id,
        "CREATE TABLE {schema}.totals (grp int PRIMARY KEY, total bigint NOT NULL, n bigint NOT NULL)",
    )
    stack.start_api()
    stack.start_worker()
    observed = Observed()
    client = Client(stack, org.admin_key, observed)
    try:
        created = await client.request(
            "POST",
            "/api/streaming/pipelines",
            json={
                "name": f"fault-{part}",
                "source": {"type": "webhook"},
                "transforms": [
                    {
                        "type": "aggregate",
                        "config": {
                            "groupBy": ["grp"],
                            "aggregations": [
                                {"field": "amount", "function": "sum", "alias": "total"},
                                {"field": "*", "function": "count", "alias": "n"},
                            ],
                        },
                    }
                ],
                "destination": {
                    "type": "database",
                    "config": {
                        "table": "totals",
                        "operation": "upsert",
                        "conflictFields": ["grp"],
                        "retryPolicy": {"maxRetries": 20, "backoffMs": 200},
                    },
                },
                "options": {"batchSize": 200},
            },
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        started = await client.request("POST", f"/api/streaming/pipelines/{pid}/start")
        assert started.status_code == 200, started.text

        ids: list[int] = []
        stop_reading = asyncio.Event()
        reader = asyncio.create_task(read_stream(client, pid, ids, stop_reading))
        sent: list[int] = []
        loader = asyncio.create_task(load(client, pid, sent))
        # Mid-run: the worker has delivered part of what was sent, and more is on its way.
        await until(
            lambda: pipeline_metrics(client, pid), lambda m: m["committedOffset"] > 0, timeout=60
        )

        client.api_dead = part == "api"
        stack.kill(part)
        await asyncio.sleep(3)  # the load and the stream go on against the outage
        stack.restart(part)
        if part == "api":
            await until(_healthy(client), bool, timeout=60)
            client.api_dead = False

        await asyncio.wait_for(loader, timeout=120)
        final = await until(
            lambda: pipeline_metrics(client, pid),
            lambda m: m["committedOffset"] == TOTAL,
            timeout=120,
        )
        await asyncio.sleep(1.5)  # a few more metrics events on the stream
        stop_reading.set()
        reconnects = await asyncio.wait_for(reader, timeout=30)
        stopped = await client.request("POST", f"/api/streaming/pipelines/{pid}/stop")
        assert stopped.status_code == 200, stopped.text
    finally:
        await client.close()
        stack.stop_services()

    rows = await query(stack.settings, f'SELECT grp, total, n FROM "{schema}".totals')
    assert {grp: (total, n) for grp, total, n in rows} == expected_totals()
    assert final["latestOffset"] == TOTAL  # every retried batch was ingested exactly once
    assert final["itemsProcessed"] == TOTAL
    assert observed.bad == []
    assert observed.transport_errors == []
    logged = await query(
        stack.settings,
        "SELECT id FROM events WHERE stream = %s AND org_id = %s AND id <= %s ORDER BY id",
        (f"pipeline:{pid}", org.id, ids[-1]),
    )
    assert ids == [row[0] for row in logged]  # every event once, in order, across reconnects
    outage = observed.outage_seconds()
    summary = {
        "part": part,
        "answers": len(observed.answers),
        "503s": len(outage),
        "slowest503s": round(max(outage), 3) if outage else None,
        "slowest": sorted(observed.answers, key=lambda a: -a[2])[:3],
        "sseEvents": len(ids),
        "sseReconnects": reconnects,
    }
    print(json.dumps(summary))


def _healthy(client: Client) -> Any:
    async def probe() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return (await client.http.get("/healthz")).status_code == 200
        return False

    return probe


def outage_requests(spec: dict[str, Any], pid: str) -> list[tuple[str, str, Any]]:
    """Every GET without path parameters (streams and the health probe aside), plus the
    pipeline's own reads and writes."""
    requests: list[tuple[str, str, Any]] = [
        ("GET", path, None)
        for path, operations in spec["paths"].items()
        if "get" in operations
        and "{" not in path
        and not path.endswith("/stream")
        and path not in ("/healthz", "/api/console/config", "/api/voice/voices")
    ]
    base = f"/api/streaming/pipelines/{pid}"
    requests += [
        ("GET", base, None),
        ("GET", f"{base}/metrics", None),
        ("POST", f"{base}/batch", [{"grp": 1, "amount": 1}]),
        ("POST", f"{base}/process", {"grp": 1, "amount": 1}),
        ("POST", f"{base}/start", None),
    ]
    return requests


async def test_while_postgres_is_down_every_endpoint_is_a_quick_json_503(stack: Stack) -> None:
    org = await make_org(stack.settings)
    stack.start_api()
    await asyncio.sleep(0)
    async with httpx.AsyncClient(
        base_url=stack.url, headers=auth(org.admin_key), timeout=CLIENT_TIMEOUT
    ) as http:
        try:
            await until(_healthy_http(http), bool, timeout=60)
            spec = (await http.get("/openapi.json")).json()
            created = await http.post(
                "/api/streaming/pipelines",
                json={
                    "name": "outage",
                    "source": {"type": "webhook"},
                    "destination": {"type": "webhook", "config": {"url": "http://127.0.0.1:9/"}},
                },
            )
            pid = created.json()["id"]
            requests = outage_requests(spec, pid)
            stack.kill("postgres")
            timings: list[tuple[str, int, float]] = []
            for method, path, body in requests:
                started = time.monotonic()
                response = await http.request(method, path, json=body)
                timings.append(
                    (f"{method} {path}", response.status_code, time.monotonic() - started)
                )
                assert response.status_code == 503, (path, response.status_code, response.text)
                assert response.headers["retry-after"] == str(stack.settings.retry_after_seconds)
                assert {"error", "retryAfter", "requestId"} <= set(response.json())
                assert response.headers["x-request-id"] == response.json()["requestId"]
            stack.restart("postgres")
            # The same keep-alive client is served again once PostgreSQL is back.
            back = await until(
                lambda: http.get("/api/streaming/pipelines"), lambda r: r.status_code == 200, 30
            )
            assert back.json()["items"][0]["id"] == pid
        finally:
            stack.stop_services()
    seconds = [t for _, _, t in timings]
    print(
        json.dumps(
            {
                "postgresDown": len(timings),
                "maxSeconds": round(max(seconds), 3),
                "meanSeconds": round(sum(seconds) / len(seconds), 3),
            }
        )
    )


async def test_while_temporal_is_down_its_routes_are_a_quick_json_503(stack: Stack) -> None:
    org = await make_org(stack.settings)
    stack.start_api()
    async with httpx.AsyncClient(
        base_url=stack.url, headers=auth(org.admin_key), timeout=CLIENT_TIMEOUT
    ) as http:
        try:
            await until(_healthy_http(http), bool, timeout=60)
            created = await http.post(
                "/api/streaming/pipelines",
                json={
                    "name": "outage",
                    "source": {"type": "webhook"},
                    "destination": {"type": "webhook", "config": {"url": "http://127.0.0.1:9/"}},
                },
            )
            pid = created.json()["id"]
            stack.kill("temporal")
            started = time.monotonic()
            start = await http.post(f"/api/streaming/pipelines/{pid}/start")
            start_seconds = time.monotonic() - started
            assert start.status_code == 503, start.text
            assert "Temporal" in start.json()["error"] and "retry-after" in start.headers
            # What needs only PostgreSQL keeps working.
            listed = await http.get("/api/streaming/pipelines")
            assert listed.status_code == 200
            accepted = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=[{"a": 1}])
            assert accepted.status_code == 202
            stack.restart("temporal")
            again = await until(
                lambda: http.post(f"/api/streaming/pipelines/{pid}/start"),
                lambda r: r.status_code != 503,
                timeout=60,
            )
            assert again.status_code == 200, again.text
        finally:
            stack.stop_services()
    print(json.dumps({"temporalDownStartSeconds": round(start_seconds, 3)}))


def _healthy_http(http: httpx.AsyncClient) -> Any:
    async def probe() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return (await http.get("/healthz")).status_code == 200
        return False

    return probe


REDELIVERY_ITEMS = 3000
REDELIVERY_BATCH = 500


async def test_a_killed_worker_redelivers_a_bounded_prefix_with_the_same_webhook_ids(
    api: RunningApi, org: Org
) -> None:
    """At least once, with a stable `webhook-id`: after a kill -9 mid-delivery nothing is lost,
    every duplicate repeats its first delivery's id, and the duplicates fit in one batch."""
    from tests.pipeline_helpers import HookReceiver

    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key), timeout=60) as http,
    ):
        created = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "redelivery",
                "source": {"type": "webhook"},
                "destination": {"type": "webhook", "config": {"url": hook.url}},
                "options": {"batchSize": REDELIVERY_BATCH},
            },
        )
        pid = created.json()["id"]
        for first in range(0, REDELIVERY_ITEMS, 1000):
            batch = [{"n": i} for i in range(first, first + 1000)]
            accepted = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch)
            assert accepted.status_code == 202
        with worker_process(api.settings) as first_worker:
            assert (await http.post(f"/api/streaming/pipelines/{pid}/start")).status_code == 200
            await until(
                lambda: asyncio.sleep(0, len(hook.accepted)),
                lambda n: n >= REDELIVERY_BATCH + REDELIVERY_BATCH // 2,  # mid-second batch
                timeout=60,
            )
            first_worker.kill()
            first_worker.wait()
        at_kill = len(hook.accepted)
        with worker_process(api.settings):
            await until(
                lambda: asyncio.sleep(0, {r["json"]["n"] for r in hook.accepted}),
                lambda seen: len(seen) == REDELIVERY_ITEMS,
                timeout=120,
            )
            await asyncio.sleep(1)
            assert (await http.post(f"/api/streaming/pipelines/{pid}/stop")).status_code == 200
    ids_by_item: dict[int, set[str]] = {}
    for record in hook.accepted:
        ids_by_item.setdefault(record["json"]["n"], set()).add(record["headers"]["webhook-id"])
    duplicates = len(hook.accepted) - REDELIVERY_ITEMS
    assert sorted(ids_by_item) == list(range(REDELIVERY_ITEMS))  # nothing lost
    assert all(len(ids) == 1 for ids in ids_by_item.values())  # a duplicate keeps its id
    assert 0 <= duplicates <= REDELIVERY_BATCH
    print(json.dumps({"deliveredAtKill": at_kill, "redelivered": duplicates}))
