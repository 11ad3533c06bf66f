"""Pipeline sources and the analytics destination, on the embedded stack.

    .venv/bin/python bench/pipeline_sources.py            # default run, about 1 minute
    .venv/bin/python bench/pipeline_sources.py --quick    # smaller sizes, a smoke run

Starts embedded PostgreSQL and the Temporal dev server (subprocesses), then, in this process,
the API (uvicorn, to create the pipelines) and a worker running the `SourceRouterWorkflow`.
Pipelines are created through the API and marked running directly in the database: no
`PipelineWorkflow` consumes them, so the figures are source -> durable item log only.

(1) agent_execution throughput: `--runs` runs' `run:status_changed` events published as fast as
    the event log takes them, routed into 2 pipelines (all agents / half the agents);
    routed items/s = items appended / (first publish -> last item in a log).
(2) agent_execution latency: `--rate` events/s for `--duration` s; per item,
    `pipeline_items.ingested_at - events.created_at` (both the database's clock).
(3) database_change: `--rows` inserted in transactions of 1,000 into a captured table; changes/s
    to the log, and the trigger's write overhead versus the same inserts into an uncaptured table.
(4) analytics delivery: `--events` outputs through `AnalyticsDestination.deliver` to a local
    Mixpanel fake (2,000 per request): events/s including encoding, dedup ids and HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def sql(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return list(await cursor.fetchall()) if cursor.description else []


async def count_items(url: str, pipeline_ids: list[str]) -> int:
    rows = await sql(
        url, "SELECT count(*) FROM pipeline_items WHERE pipeline_id = ANY(%s)", (pipeline_ids,)
    )
    return int(rows[0][0])


async def wait_items(url: str, pipeline_ids: list[str], n: int, limit_s: float = 120) -> float:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await count_items(url, pipeline_ids) >= n:
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{n} items not routed within {limit_s}s")


def status_events(org_id: str, agent: str, n: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    events = []
    for _ in range(n):
        run_id = f"run_{uuid.uuid4().hex[:12]}"
        for previous, status in (("queued", "running"), ("running", "completed")):
            run = {"id": run_id, "agentId": agent, "status": status, "cost": 0.001}
            events.append(
                (
                    org_id,
                    f"org:{org_id}",
                    "run:status_changed",
                    {
                        "runId": run_id,
                        "agentId": agent,
                        "status": status,
                        "previousStatus": previous,
                        "run": run,
                    },
                )
            )
    return events


async def make_org(db_url: str) -> tuple[str, str]:
    from deeployd.db import Database
    from deeployd.models.organization import Scope
    from deeployd.orgs import create_api_key, get_or_create_org

    db = Database(db_url, pool_size=1)
    try:
        async with db.session() as session:
            org = await get_or_create_org(session, f"bench-sources-{uuid.uuid4().hex[:8]}")
            _, key = await create_api_key(session, org.id, "bench", [Scope.admin])
    finally:
        await db.close()
    return org.id, key


async def create_running(http: httpx.AsyncClient, url: str, source: dict[str, Any]) -> str:
    response = await http.post(
        "/api/streaming/pipelines",
        json={
            "name": "bench",
            "source": source,
            "destination": {"type": "webhook", "config": {"url": "http://127.0.0.1:9/unused"}},
            "options": {"maxPending": 1_000_000},
        },
    )
    response.raise_for_status()
    pipeline_id: str = response.json()["id"]
    await sql(url, "UPDATE pipelines SET status = 'running' WHERE id = %s", (pipeline_id,))
    return pipeline_id


async def main(args: argparse.Namespace) -> None:
    import uvicorn

    from api.main import create_app
    from deeployd import migrations, temporal
    from deeployd.devstack import (
        EmbeddedPostgres,
        free_port,
        start_temporal_dev_server,
        stop_process,
    )
    from deeployd.pipelines.destinations import Delivery, DeliveryContext, get_destination
    from deeployd.pipelines.destinations.database import org_schema
    from deeployd.pipelines.sources.runtime import ensure_source_router
    from deeployd.pipelines.transforms import OutItem
    from deeployd.security import SecretBox
    from deeployd.services import Services
    from deeployd.settings import Settings
    from tests.fakes import serve
    from tests.fakes.analytics import AnalyticsFake
    from worker import build_worker

    data = Path(tempfile.mkdtemp(prefix="bench-sources-"))
    postgres = EmbeddedPostgres(data / "pg")
    port = free_port()
    temporal_process = start_temporal_dev_server(
        port=port, ui_port=None, db_file=None, log_file=data / "temporal.log"
    )
    results: dict[str, Any] = {}
    try:
        migrations.upgrade(postgres.url)
        settings = Settings(
            database_url=postgres.url,
            temporal_address=f"127.0.0.1:{port}",
            secret_key=SecretBox.generate_key(),
            allow_private_urls=True,
            data_dir=data,
            log_json=False,
            log_level="WARNING",
            task_queue="bench-sources",
        )
        client = await temporal.connect(settings)
        await temporal.ensure_search_attributes(client)
        services = await Services.open(settings, with_temporal=False)
        services.temporal = client
        app = create_app(settings)
        api_port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=api_port, log_config=None)
        )
        server_task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
            await asyncio.sleep(0.02)
        org_id, key = await make_org(postgres.url)
        url = postgres.url
        async with (
            build_worker(client, services, settings.task_queue),
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ) as http,
        ):
            router_id = await ensure_source_router(client, settings, services)
            every = await create_running(http, url, {"type": "agent_execution"})
            half = await create_running(
                http, url, {"type": "agent_execution", "agentIds": ["agent-0"]}
            )

            # (1) throughput
            events: list[Any] = []
            for a in range(2):
                events += status_events(org_id, f"agent-{a}", args.runs // 2)
            expected = len(events) + len(events) // 2
            started = time.monotonic()
            for i in range(0, len(events), 500):
                await services.publisher.publish_many(events[i : i + 500])
            published = time.monotonic()
            done = await wait_items(url, [every, half], expected)
            results["throughput"] = {
                "events": len(events),
                "items": expected,
                "publish_s": published - started,
                "route_s": done - started,
                "items_per_s": expected / (done - started),
                "events_per_s": len(events) / (done - started),
            }

            # (2) latency at a fixed rate
            latency_pipe = await create_running(http, url, {"type": "agent_execution"})
            total = int(args.rate * args.duration)
            tick = 0.05
            per_tick = max(1, int(args.rate * tick))
            sent = 0
            next_at = time.monotonic()
            while sent < total:
                batch = status_events(org_id, "agent-lat", (per_tick + 1) // 2)[:per_tick]
                await services.publisher.publish_many(batch)
                sent += len(batch)
                next_at += tick
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await wait_items(url, [latency_pipe], sent)
            rows = await sql(
                url,
                "SELECT extract(epoch FROM (i.ingested_at - e.created_at)) * 1000 "
                "FROM pipeline_items i JOIN events e "
                "ON i.dedup_key = 'event:' || e.id WHERE i.pipeline_id = %s",
                (latency_pipe,),
            )
            lat = [float(r[0]) for r in rows]
            results["latency"] = {
                "events": len(lat),
                "rate": args.rate,
                "p50_ms": statistics.median(lat),
                "p95_ms": pct(lat, 95),
                "p99_ms": pct(lat, 99),
                "max_ms": max(lat),
            }

            # (3) database_change
            schema = org_schema(org_id)
            await sql(url, f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for table in ("captured", "plain"):
                await sql(url, f'CREATE TABLE "{schema}".{table} (id int PRIMARY KEY, v text)')
            response = await http.post(
                "/api/streaming/pipelines",
                json={
                    "name": "cdc",
                    "source": {"type": "database_change", "table": "captured"},
                    "destination": {
                        "type": "webhook",
                        "config": {"url": "http://127.0.0.1:9/unused"},
                    },
                    "options": {"maxPending": 1_000_000},
                },
            )
            response.raise_for_status()
            cdc = response.json()["id"]
            from deeployd.pipelines.sources.lifecycle import on_pipeline_started

            await on_pipeline_started(
                services, org_id, cdc, {"type": "database_change", "table": "captured"}
            )
            await sql(url, "UPDATE pipelines SET status = 'running' WHERE id = %s", (cdc,))
            timings = {}
            for table in ("plain", "captured"):
                t0 = time.monotonic()
                for first in range(0, args.rows, 1000):
                    await sql(
                        url,
                        f'INSERT INTO "{schema}".{table} '
                        "SELECT g, 'row ' || g FROM generate_series(%s::int, %s::int) g",
                        (first, min(first + 999, args.rows - 1)),
                    )
                timings[table] = time.monotonic() - t0
            done = await wait_items(url, [cdc], args.rows)
            results["cdc"] = {
                "rows": args.rows,
                "insert_plain_s": timings["plain"],
                "insert_captured_s": timings["captured"],
                "captured_to_log_s": done - t0,
                "changes_per_s": args.rows / (done - t0),
            }
            await client.get_workflow_handle(router_id).terminate("bench over")

        # (4) analytics delivery
        fake = AnalyticsFake(mixpanel_token="bench-token", max_body_bytes=16 * 1024 * 1024)
        async with serve(fake.app) as fake_url, httpx.AsyncClient() as plain_http:
            outs = [
                OutItem(
                    value={
                        "event_type": "agent_completion",
                        "agent_id": f"agent-{i % 50}",
                        "tokens": i,
                        "cost": 0.001,
                        "timestamp": "2026-11-24T10:00:00Z",
                    },
                    first_offset=i,
                    last_offset=i,
                    ingest_ms=0,
                )
                for i in range(1, args.events + 1)
            ]
            ctx = DeliveryContext(
                org_id=org_id,
                pipeline_id="pl_bench",
                config={"provider": "mixpanel", "projectToken": "bench-token", "baseUrl": fake_url},
                http=plain_http,
                settings=settings,
                db=services.db,
            )
            destination = get_destination("analytics")
            t0 = time.monotonic()
            for first in range(0, len(outs), 10_000):
                await destination.deliver(ctx, Delivery(items=outs[first : first + 10_000]))
            elapsed = time.monotonic() - t0
            assert len(fake.mixpanel) == args.events
            results["analytics"] = {
                "events": args.events,
                "requests": len(fake.requests),
                "s": elapsed,
                "events_per_s": args.events / elapsed,
            }
        server.should_exit = True
        await server_task
        await services.close()
    finally:
        stop_process(temporal_process)
        postgres.stop()

    t = results["throughput"]
    lat = results["latency"]
    c = results["cdc"]
    a = results["analytics"]
    print("\n## pipeline sources benchmark\n")
    print("| measurement | value |")
    print("|---|---:|")
    print(f"| agent_execution: events published | {t['events']:,} |")
    print(f"| agent_execution: items routed (2 pipelines) | {t['items']:,} |")
    print(f"| agent_execution: publish time s | {t['publish_s']:.2f} |")
    print(f"| agent_execution: first publish -> last item s | {t['route_s']:.2f} |")
    print(f"| agent_execution: routed items/s | {t['items_per_s']:,.0f} |")
    print(f"| agent_execution: events/s | {t['events_per_s']:,.0f} |")
    print(f"| agent_execution latency at {lat['rate']} ev/s: p50 ms | {lat['p50_ms']:.1f} |")
    print(f"| ... p95 ms | {lat['p95_ms']:.1f} |")
    print(f"| ... p99 ms | {lat['p99_ms']:.1f} |")
    print(f"| ... max ms | {lat['max_ms']:.1f} |")
    print(f"| database_change: rows inserted | {c['rows']:,} |")
    print(f"| database_change: insert s, no trigger | {c['insert_plain_s']:.2f} |")
    print(f"| database_change: insert s, captured | {c['insert_captured_s']:.2f} |")
    print(f"| database_change: changes/s to the log | {c['changes_per_s']:,.0f} |")
    print(f"| analytics (mixpanel fake): events | {a['events']:,} in {a['requests']} requests |")
    print(f"| analytics: events/s delivered | {a['events_per_s']:,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20_000)
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.runs, parsed.duration, parsed.rows, parsed.events = 1000, 2.0, 1000, 2000
    asyncio.run(main(parsed))
