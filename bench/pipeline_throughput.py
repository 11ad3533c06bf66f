"""Pipeline throughput and latency, end to end on the embedded stack.

    .venv/bin/python bench/pipeline_throughput.py            # default run, about 1.5 minutes
    .venv/bin/python bench/pipeline_throughput.py --quick    # smaller sizes, for a smoke run

Every part is its own process, as in production, sharing the machine's cores: embedded
PostgreSQL, the Temporal dev server, the API (`python -m uvicorn api.main:app`), one worker
(`python worker.py`), and this process as the client that ingests through
`POST /api/streaming/pipelines/{id}/batch`. The pipeline is filter -> map -> database upsert
into a table of the org's schema, with full durability (every item committed to the log
before the 202; every output committed by the upsert before its offset is).

(1) sustained throughput: `--items` items as fast as the API accepts them (10,000 per request,
    2 requests in flight); items/s = items / (first request sent -> last offset committed).
(2) latency at a fixed rate: `--rate` items/s for `--duration` s (paced every 50 ms). Every
    item carries its send time; the destination row records `clock_timestamp()` when the upsert
    wrote it, so ingest->delivered latency is measured per item, exactly.
(3) the ceiling: the same filter and map as a plain in-memory Python loop, and through the
    transform engine's compiled chain in memory (no I/O at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TRANSFORMS = [
    {"type": "filter", "config": {"field": "kind", "operator": "neq", "value": "noise"}},
    {
        "type": "map",
        "config": {
            "expression": {
                "id": "id",
                "agent": "upper(agent)",
                "tokens": "tokens",
                "sent_ms": "sent_ms",
            }
        },
    },
]


def make_items(start: int, count: int, sent_ms: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "agent": f"agent-{i % 17}",
            "tokens": i % 1000,
            "kind": "noise" if i % 10 == 0 else "run",
            "sent_ms": sent_ms,
        }
        for i in range(start, start + count)
    ]


def ceiling(n: int) -> dict[str, float]:
    """The same transforms with no I/O: a hand-written loop, and the engine's chain."""
    from deeployd.pipelines.transforms import Item, compile_chain

    items = make_items(0, n, 0)
    started = time.perf_counter()
    out = [
        {"id": v["id"], "agent": v["agent"].upper(), "tokens": v["tokens"], "sent_ms": v["sent_ms"]}
        for v in items
        if v["kind"] != "noise"
    ]
    plain = n / (time.perf_counter() - started)
    assert len(out) == n - n // 10
    chain = compile_chain(TRANSFORMS)
    wrapped = [Item(offset=i + 1, value=v, ingest_ms=0) for i, v in enumerate(items)]
    state = chain.initial_state()
    started = time.perf_counter()
    for first in range(0, n, 5000):
        result = chain.process(state, wrapped[first : first + 5000], 0)
        state = result.state
    engine = n / (time.perf_counter() - started)
    return {"plain_loop_items_s": plain, "engine_chain_items_s": engine}


async def make_org(db_url: str) -> tuple[str, str]:
    from deeployd.db import Database
    from deeployd.models.organization import Scope
    from deeployd.orgs import create_api_key, get_or_create_org

    db = Database(db_url, pool_size=1)
    try:
        async with db.session() as session:
            org = await get_or_create_org(session, f"bench-{os.getpid()}")
            _, key = await create_api_key(session, org.id, "bench", [Scope.admin])
    finally:
        await db.close()
    return org.id, key


async def sql(db_url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return list(await cursor.fetchall()) if cursor.description else []


async def committed(http: httpx.AsyncClient, pid: str) -> int:
    metrics = (await http.get(f"/api/streaming/pipelines/{pid}/metrics")).json()
    return int(metrics["committedOffset"])


async def wait_committed(http: httpx.AsyncClient, pid: str, offset: int, limit_s: float) -> float:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await committed(http, pid) >= offset:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"offset {offset} not committed within {limit_s}s")


async def post_batch(http: httpx.AsyncClient, pid: str, items: list[dict[str, Any]]) -> int:
    body = json.dumps(items).encode()
    while True:
        response = await http.post(
            f"/api/streaming/pipelines/{pid}/batch",
            content=body,
            headers={"content-type": "application/json"},
        )
        if response.status_code == 429:  # backpressure: honour Retry-After, never drop
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        response.raise_for_status()
        return int(response.json()["lastOffset"])


async def throughput_phase(http: httpx.AsyncClient, pid: str, total: int) -> dict[str, float]:
    chunk = 10_000
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start in range(0, total, chunk):
        queue.put_nowait(start)
    last = 0

    async def sender() -> None:
        nonlocal last
        while not queue.empty():
            start = queue.get_nowait()
            items = make_items(start, min(chunk, total - start), int(time.time() * 1000))
            last = max(last, await post_batch(http, pid, items))

    started = time.monotonic()
    await asyncio.gather(sender(), sender())
    ingested = time.monotonic()
    done = await wait_committed(http, pid, last, 600)
    return {
        "items": total,
        "ingest_items_s": total / (ingested - started),
        "end_to_end_items_s": total / (done - started),
        "seconds": done - started,
        "last_offset": last,
    }


async def latency_phase(
    http: httpx.AsyncClient, pid: str, first_id: int, rate: float, duration: float
) -> int:
    tick = 0.05
    per_tick = max(1, round(rate * tick))
    next_id = first_id
    started = time.monotonic()
    last = 0
    ticks = int(duration / tick)
    pending: set[asyncio.Task[int]] = set()
    for k in range(ticks):
        target = started + k * tick
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        items = make_items(next_id, per_tick, int(time.time() * 1000))
        next_id += per_tick
        task = asyncio.create_task(post_batch(http, pid, items))
        pending.add(task)
        task.add_done_callback(pending.discard)
    results = await asyncio.gather(*pending) if pending else []
    last = max([last, *results])
    await wait_committed(http, pid, last, 120)
    return next_id


def spawn_children(env: dict[str, str], api_port: int, log_path: Path) -> list[Any]:
    """The API and one worker, each its own process; their output goes to one log file."""
    log = log_path.open("wb")
    api = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
    api += ["--port", str(api_port), "--log-level", "warning"]
    return [
        subprocess.Popen(api, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "worker.py"], env=env, cwd=REPO, stdout=log, stderr=log),
    ]


async def orchestrate(opts: argparse.Namespace) -> dict[str, Any]:
    from deeployd import migrations, temporal
    from deeployd.devstack import (
        EmbeddedPostgres,
        free_port,
        start_temporal_dev_server,
        stop_process,
        wait_for_port,
    )
    from deeployd.pipelines.destinations.database import org_schema
    from deeployd.security import SecretBox
    from deeployd.settings import Settings

    results: dict[str, Any] = {"cores": os.cpu_count(), "load_before": os.getloadavg()}
    results["ceiling"] = ceiling(opts.ceiling_items)
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg")
        temporal_port = free_port()
        temporal_proc = start_temporal_dev_server(
            port=temporal_port, ui_port=None, db_file=None, log_file=Path(tmp) / "temporal.log"
        )
        children: list[subprocess.Popen[bytes]] = []
        try:
            db_url = postgres.url
            await asyncio.to_thread(migrations.upgrade, db_url)
            client = await temporal.connect(
                Settings(database_url=db_url, temporal_address=f"127.0.0.1:{temporal_port}")
            )
            await temporal.ensure_search_attributes(client)
            org_id, api_key = await make_org(db_url)
            schema = org_schema(org_id)
            await sql(db_url, f'CREATE SCHEMA "{schema}"')
            await sql(
                db_url,
                f'CREATE TABLE "{schema}".runs (id bigint PRIMARY KEY, agent text, tokens int, '
                "sent_ms bigint, delivered_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            )
            api_port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": db_url,
                "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
                "DEEPLOYD_TASK_QUEUE": "bench",
                "DEEPLOYD_SECRET_KEY": SecretBox.generate_key(),
                "DEEPLOYD_LOG_JSON": "false",
                "DEEPLOYD_LOG_LEVEL": "WARNING",
                "DEEPLOYD_DATA_DIR": tmp,
            }
            children += spawn_children(env, api_port, Path(tmp) / "children.log")
            await asyncio.to_thread(
                wait_for_port, "127.0.0.1", api_port, timeout=60, process=children[0]
            )
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=120,
            ) as http:
                created = await http.post(
                    "/api/streaming/pipelines",
                    json={
                        "name": "bench",
                        "source": {"type": "webhook"},
                        "transforms": TRANSFORMS,
                        "destination": {
                            "type": "database",
                            "config": {
                                "table": "runs",
                                "operation": "upsert",
                                "conflictFields": ["id"],
                            },
                        },
                        "options": {"batchSize": opts.batch_size, "maxPending": 1_000_000},
                    },
                )
                created.raise_for_status()
                pid = created.json()["id"]
                (await http.post(f"/api/streaming/pipelines/{pid}/start")).raise_for_status()
                # Warm-up: the worker picks up the workflow, connections open.
                await post_batch(http, pid, make_items(10_000_000, 1000, 0))
                await wait_committed(http, pid, 1000, 60)
                print(f"(1) {opts.items} items as fast as possible ...", flush=True)
                results["throughput"] = await throughput_phase(http, pid, opts.items)
                print(f"(2) {opts.rate:.0f} items/s for {opts.duration:.0f} s ...", flush=True)
                first = 20_000_000
                end = await latency_phase(http, pid, first, opts.rate, opts.duration)
                rows = await sql(
                    db_url,
                    "SELECT count(*), "
                    "percentile_cont(0.5) WITHIN GROUP (ORDER BY lat), "
                    "percentile_cont(0.99) WITHIN GROUP (ORDER BY lat), max(lat) FROM "
                    f"(SELECT extract(epoch FROM delivered_at) * 1000 - sent_ms AS lat "
                    f'FROM "{schema}".runs WHERE id >= %s AND id < %s) t',
                    (first, end),
                )
                count, p50, p99, worst = rows[0]
                results["latency"] = {
                    "rate": opts.rate,
                    "duration_s": opts.duration,
                    "delivered_rows": count,
                    "p50_ms": float(p50),
                    "p99_ms": float(p99),
                    "max_ms": float(worst),
                }
                metrics = (await http.get(f"/api/streaming/pipelines/{pid}/metrics")).json()
                results["pipeline_metrics"] = metrics
                expected = opts.items - opts.items // 10
                got = await sql(
                    db_url, f'SELECT count(*) FROM "{schema}".runs WHERE id < %s', (opts.items,)
                )
                results["throughput"]["rows_ok"] = got[0][0] == expected
                await http.post(f"/api/streaming/pipelines/{pid}/stop")
        finally:
            for child in reversed(children):
                stop_process(child, timeout=10)
            if os.environ.get("KEEP_LOG"):
                import shutil

                shutil.copy(Path(tmp) / "children.log", os.environ["KEEP_LOG"])
            stop_process(temporal_proc, timeout=10)
            postgres.stop()
    results["load_after"] = os.getloadavg()
    return results


def report(results: dict[str, Any]) -> None:
    t, lat, ceil = results["throughput"], results["latency"], results["ceiling"]
    print()
    print("| measurement | value |")
    print("|---|---|")
    print(
        f"| sustained end to end (ingest -> upsert committed), items/s | {t['end_to_end_items_s']:,.0f} |"
    )
    print(f"| ingest only (POST /batch, durable), items/s | {t['ingest_items_s']:,.0f} |")
    print(f"| all {t['items']:,} items' rows present in the table | {t['rows_ok']} |")
    print(
        f"| latency at {lat['rate']:,.0f} items/s: p50 / p99 / max, ms "
        f"| {lat['p50_ms']:,.0f} / {lat['p99_ms']:,.0f} / {lat['max_ms']:,.0f} |"
    )
    print(f"| ceiling: plain Python loop, items/s | {ceil['plain_loop_items_s']:,.0f} |")
    print(f"| ceiling: transform engine in memory, items/s | {ceil['engine_chain_items_s']:,.0f} |")
    print(
        f"| cores / load before / after | {results['cores']} / {results['load_before'][0]:.2f} / {results['load_after'][0]:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=5000, help="pipeline options.batchSize")
    parser.add_argument("--ceiling-items", type=int, default=200_000)
    opts = parser.parse_args()
    if opts.quick:
        opts.items, opts.duration, opts.ceiling_items = 40_000, 5.0, 50_000
    results = asyncio.run(orchestrate(opts))
    report(results)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "pipeline_throughput.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
