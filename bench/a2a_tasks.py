"""A2A task benchmark: JSON-RPC `SendMessage` -> A2ATaskWorkflow -> agent-run activities -> back.

    .venv/bin/python bench/a2a_tasks.py            # default run, about 1.5 minutes
    .venv/bin/python bench/a2a_tasks.py --quick    # a smoke run

Every part is a separate process, as in production: embedded PostgreSQL, the Temporal dev server,
the worker (`python worker.py`), the API (`uvicorn api.main:app`), and this process as the
client. 2 cores are shared by all of them.

Figures:
(a) tasks/s completed: 50 concurrent clients, each sending blocking JSON-RPC `SendMessage`
    requests in a loop to an agent on the scripted provider (a 12-word answer, no token delay),
    for a fixed duration; every answer is checked (state completed, full artifact text).
(b) follow-up latency: a task waits in `input-required` (an `ask_user` call); the client holds
    the task's REST stream open, POSTs the follow-up and measures until the `working`
    statusUpdate arrives on the stream. Target p50 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
ANSWER = "The quick brown fox jumps over the lazy dog, twice, for the benchmark."
ASK_SCRIPT = [
    {"toolCalls": [{"name": "ask_user", "arguments": {"question": "Which city?"}}]},
    {"text": "Noted: {{lastToolResult.answer}}."},
]


async def make_org(db_url: str) -> str:
    from deeployd.db import Database
    from deeployd.models.organization import Scope
    from deeployd.orgs import create_api_key, get_or_create_org

    db = Database(db_url, pool_size=1)
    try:
        async with db.session() as session:
            org = await get_or_create_org(session, f"bench-{uuid.uuid4().hex[:8]}")
            _, key = await create_api_key(session, org.id, "bench", [Scope.admin])
    finally:
        await db.close()
    return key


async def create_agent(
    http: httpx.AsyncClient, script: list[dict[str, Any]], tools: list[str]
) -> str:
    response = await http.post(
        "/api/agents",
        json={
            "name": f"bench-{uuid.uuid4().hex[:6]}",
            "provider": "scripted",
            "model": "scripted",
            "tools": tools,
            "providerOptions": {"script": script, "tokenDelayMs": 0},
        },
    )
    response.raise_for_status()
    return str(response.json()["id"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def scenario_throughput(
    http: httpx.AsyncClient, agent_id: str, clients: int, seconds: float
) -> dict[str, Any]:
    done = 0
    failures = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def one_client() -> None:
        nonlocal done, failures
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await http.post(
                f"/a2a/agents/{agent_id}",
                headers={"A2A-Version": "1.0"},
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "SendMessage",
                    "params": {
                        "message": {
                            "messageId": str(uuid.uuid4()),
                            "role": "ROLE_USER",
                            "parts": [{"text": "go"}],
                        }
                    },
                },
            )
            task = response.json().get("result", {}).get("task", {})
            ok = (
                task.get("status", {}).get("state") == "TASK_STATE_COMPLETED"
                and task.get("artifacts", [{}])[0].get("parts", [{}])[0].get("text") == ANSWER
            )
            if ok:
                done += 1
                latencies.append(time.monotonic() - started)
            else:
                failures += 1

    started = time.monotonic()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "completed": done,
        "failed": failures,
        "tasks_per_s": round(done / elapsed, 1),
        "p50_task_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_task_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
    }


async def next_event(lines: Any) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data: "):
            return dict(json.loads(line[6:]))
    raise RuntimeError("stream ended")


async def scenario_follow_up(http: httpx.AsyncClient, agent_id: str, count: int) -> dict[str, Any]:
    latencies: list[float] = []
    for _ in range(count):
        created = await http.post("/api/a2a/tasks", json={"agentId": agent_id, "message": "hi"})
        task_id = created.json()["id"]
        async with http.stream("GET", f"/api/a2a/tasks/{task_id}/stream") as response:
            lines = response.aiter_lines()
            while True:
                event = await next_event(lines)
                if event.get("type") == "statusUpdate" and event["state"] == "input-required":
                    break
            started = time.monotonic()
            answer = await http.post(f"/api/a2a/tasks/{task_id}/messages", json={"content": "Oslo"})
            answer.raise_for_status()
            while True:
                event = await next_event(lines)
                if event.get("type") == "statusUpdate" and event["state"] == "working":
                    latencies.append(time.monotonic() - started)
                    break
            while not (event.get("type") == "statusUpdate" and event.get("final")):
                event = await next_event(lines)
    return {
        "count": count,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p90_ms": round(percentile(latencies, 0.9) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


async def measure(
    args: argparse.Namespace, url: str, db_url: str, pids: dict[str, int]
) -> dict[str, Any]:
    key = await make_org(db_url)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits
    ) as http:
        answerer = await create_agent(http, [{"text": ANSWER}], [])
        asker = await create_agent(http, ASK_SCRIPT, ["ask_user"])
        print("warming up …", flush=True)
        await scenario_throughput(http, answerer, 5, 3.0)
        await scenario_follow_up(http, asker, 3)
        print("(a) tasks/s at 50 concurrent clients …", flush=True)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        throughput = await scenario_throughput(http, answerer, 50, 15.0 if args.quick else 40.0)
        throughput["cpu_s"] = {
            name: round(cpu_seconds(pid) - before[name], 1) for name, pid in pids.items()
        }
        print("(b) follow-up -> working latency …", flush=True)
        follow_up = await scenario_follow_up(http, asker, 10 if args.quick else 40)
    return {"throughput": throughput, "follow_up": follow_up, "load": os.getloadavg()}


def report(results: dict[str, Any]) -> None:
    t, f = results["throughput"], results["follow_up"]
    print("\n## A2A tasks (bench/a2a_tasks.py)\n")
    print("| figure | value | target |")
    print("|---|---|---|")
    print(
        f"| tasks completed per second, {t['clients']} concurrent JSON-RPC clients, scripted "
        f"provider ({t['completed']} tasks in {t['seconds']} s, {t['failed']} failed) | "
        f"{t['tasks_per_s']} tasks/s (per task p50 {t['p50_task_ms']} ms, "
        f"p99 {t['p99_task_ms']} ms) | — |"
    )
    cpu = ", ".join(f"{name} {sec} s" for name, sec in t["cpu_s"].items())
    print(f"| · CPU used during (a) | {cpu} | |")
    print(
        f"| follow-up message -> `working` statusUpdate on the REST stream ({f['count']} tasks) | "
        f"p50 {f['p50_ms']} ms, p90 {f['p90_ms']} ms, max {f['max_ms']} ms | p50 < 100 ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    from bench.stack import embedded_stack

    with embedded_stack("a2a-bench", ["worker.py"]) as stack:
        results = asyncio.run(measure(args, stack.api_url, stack.database_url, stack.pids))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "a2a_tasks.json").write_text(json.dumps(results, indent=2))
        report(results)


if __name__ == "__main__":
    main()
