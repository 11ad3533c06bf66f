"""Token streaming benchmark: provider -> LLM activity -> event log -> SSE client, end to end.

    .venv/bin/python bench/token_stream.py            # default run, about 1.5 minutes
    .venv/bin/python bench/token_stream.py --quick    # smaller sizes, for a smoke run

Every part is a separate process, as in production: embedded PostgreSQL, the Temporal dev server,
the worker (`--role worker`: the normal worker plus a `bench_clock` provider), the API
(`uvicorn api.main:app`), and this process as the client. 2 cores are shared by all of them.

The `bench_clock` provider emits tokens at a fixed rate; each token's text is
`<index>:<time.time_ns() at emission> `, so the client measures emission -> SSE receipt per
token (same machine clock) and proves zero loss (each index once, in order).

Figures:
(a) per-token overhead (emission -> SSE receipt) at a steady 1,000 tokens/s, p50/p99/max;
(b) the highest rate one stream sustains with zero loss (offered rates doubled until the stream
    falls behind: achieved < 95% of offered, or a token lost/out of order);
(c) the platform's own time to first token: from sending the POST (?stream=true) to receiving
    the first token, with a provider that emits its first token at once (provider delay 0);
(d) 200 concurrent runs (50 tokens each at 100 tokens/s): completion rate and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"


# --- the worker role -----------------------------------------------------------------------------


class ClockProvider:
    """Emits `count` tokens at `rate` per second; each token carries its emission time."""

    name = "bench_clock"

    async def stream(self, request: Any):  # type: ignore[no-untyped-def]
        from deeployd.agents.providers import TextDelta, UsageReport

        count = int(request.options.get("count", 100))
        rate = float(request.options.get("rate", 1000))
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            # Behind schedule: still give the loop a turn, as a real network read would.
            await asyncio.sleep(delay if delay > 0 else 0)
            yield TextDelta(text=f"{i}:{time.time_ns()} ")
        yield UsageReport(prompt_tokens=10, completion_tokens=count)


def run_worker() -> None:
    import worker
    from deeployd.agents.providers import register_provider
    from deeployd.settings import get_settings

    register_provider(ClockProvider())
    asyncio.run(worker.run(get_settings()))


# --- helpers -------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, url: str, key: str, db_url: str, org_id: str) -> None:
        import httpx

        self.url = url
        self.org_id = org_id
        self.db_url = db_url
        self.http = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(30, read=None),
            limits=httpx.Limits(max_connections=400, max_keepalive_connections=400),
        )

    async def clock_agent(self, count: int, rate: float) -> str:
        """Agent rows are written directly: the API process does not know `bench_clock`."""
        import psycopg
        from psycopg.types.json import Jsonb

        agent_id = f"agt_bench{uuid.uuid4().hex[:10]}"
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO agents (id, org_id, name, description, provider, model, system_prompt,"
                " tools, approval_required, provider_options, created_at, updated_at) VALUES"
                " (%s, %s, %s, '', 'bench_clock', 'clock', '', '[]', '[]', %s, now(), now())",
                (agent_id, self.org_id, f"clock {rate}/s", Jsonb({"count": count, "rate": rate})),
            )
        return agent_id

    async def conversation(self, agent_id: str) -> str:
        response = await self.http.post("/api/conversations", json={"agentId": agent_id})
        response.raise_for_status()
        return str(response.json()["id"])

    async def stream_run(self, conversation_id: str) -> dict[str, Any]:
        """POST a message with ?stream=true; per token: (index, emitted ns, received ns)."""
        from deeployd.sdk.sse import parse_sse

        tokens: list[tuple[int, int, int]] = []
        sent = time.time_ns()
        done: dict[str, Any] | None = None
        async with self.http.stream(
            "POST",
            f"/api/conversations/{conversation_id}/messages",
            params={"stream": "true"},
            json={"content": "go"},
        ) as response:
            response.raise_for_status()
            async for _id, data, _retry in parse_sse(response.aiter_lines()):
                if data is None:
                    continue
                now = time.time_ns()
                event = json.loads(data)
                if event["type"] == "token":
                    index, emitted = event["token"].strip().split(":")
                    tokens.append((int(index), int(emitted), now))
                elif event["type"] in ("done", "error"):
                    done = event
                    break
        return {"sent": sent, "tokens": tokens, "end": done}


def summarise(result: dict[str, Any], count: int) -> dict[str, Any]:
    tokens = result["tokens"]
    overhead_ms = [(r - e) / 1e6 for _, e, r in tokens]
    in_order = [i for i, _, _ in tokens] == list(range(count))
    span_s = (tokens[-1][2] - tokens[0][1]) / 1e9 if tokens else float("nan")
    return {
        "received": len(tokens),
        "zero_loss_in_order": in_order and (result["end"] or {}).get("type") == "done",
        "p50_ms": pct(overhead_ms, 0.50),
        "p99_ms": pct(overhead_ms, 0.99),
        "max_ms": max(overhead_ms) if overhead_ms else float("nan"),
        "achieved_tps": len(tokens) / span_s if span_s > 0 else float("nan"),
    }


# --- scenarios -----------------------------------------------------------------------------------


async def scenario_overhead(bench: Bench, count: int) -> dict[str, Any]:
    agent = await bench.clock_agent(count, 1000)
    await bench.stream_run(await bench.conversation(agent))  # warm-up
    result = await bench.stream_run(await bench.conversation(agent))
    return {"rate": 1000, "count": count, **summarise(result, count)}


async def scenario_throughput(bench: Bench, seconds: float, rates: list[int]) -> list[dict]:
    rows = []
    for rate in rates:
        count = int(rate * seconds)
        agent = await bench.clock_agent(count, rate)
        result = await bench.stream_run(await bench.conversation(agent))
        row = {"offered_tps": rate, "count": count, **summarise(result, count)}
        rows.append(row)
        print(
            f"  offered {rate:>6}/s: achieved {row['achieved_tps']:8.0f}/s, "
            f"zero loss {row['zero_loss_in_order']}, p99 {row['p99_ms']:.1f} ms",
            flush=True,
        )
        if not row["zero_loss_in_order"] or row["achieved_tps"] < 0.95 * rate:
            break
    return rows


async def scenario_ttft(bench: Bench, runs: int) -> dict[str, Any]:
    agent = await bench.clock_agent(5, 1000)
    to_first: list[float] = []
    to_emit: list[float] = []
    for _ in range(runs):
        conversation = await bench.conversation(agent)
        result = await bench.stream_run(conversation)
        _, emitted, received = result["tokens"][0]
        to_first.append((received - result["sent"]) / 1e6)
        to_emit.append((emitted - result["sent"]) / 1e6)
    return {
        "runs": runs,
        "ttft_p50_ms": pct(to_first, 0.5),
        "ttft_p90_ms": pct(to_first, 0.9),
        "post_to_first_emission_p50_ms": pct(to_emit, 0.5),
    }


async def scenario_concurrent(bench: Bench, runs: int, timeout_s: float) -> dict[str, Any]:
    agent = await bench.clock_agent(50, 100)
    gate = asyncio.Semaphore(50)

    async def conversation() -> str:
        async with gate:
            return await bench.conversation(agent)

    conversations = await asyncio.gather(*(conversation() for _ in range(runs)))
    started = time.perf_counter()

    async def send(conversation_id: str) -> str | None:
        try:
            response = await bench.http.post(
                f"/api/conversations/{conversation_id}/messages", json={"content": "go"}
            )
            return str(response.json()["runId"]) if response.status_code == 202 else None
        except Exception:
            return None

    run_ids = [r for r in await asyncio.gather(*(send(c) for c in conversations)) if r]
    accepted = time.perf_counter() - started
    wanted = set(run_ids)
    statuses: dict[str, str] = {}
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        response = await bench.http.get("/api/runs", params={"agentId": agent, "limit": 500})
        statuses = {r["id"]: r["status"] for r in response.json() if r["id"] in wanted}
        if all(s in ("completed", "failed", "cancelled") for s in statuses.values()) and len(
            statuses
        ) == len(wanted):
            break
        await asyncio.sleep(0.25)
    elapsed = time.perf_counter() - started
    completed = sum(1 for s in statuses.values() if s == "completed")
    return {
        "runs": runs,
        "accepted": len(run_ids),
        "completed": completed,
        "completion_rate": completed / runs,
        "accept_all_s": accepted,
        "all_done_s": elapsed,
    }


# --- orchestration -------------------------------------------------------------------------------


async def make_org(db_url: str) -> tuple[str, str]:
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
    return org.id, key


async def measure(args: argparse.Namespace, url: str, db_url: str) -> dict[str, Any]:
    org_id, key = await make_org(db_url)
    bench = Bench(url, key, db_url, org_id)
    try:
        print("(a) per-token overhead at 1,000 tokens/s …", flush=True)
        overhead = await scenario_overhead(bench, 1000 if args.quick else 3000)
        print("(b) sustained tokens/s on one stream …", flush=True)
        rates = [1000, 2000, 4000] if args.quick else [1000, 2000, 4000, 8000, 16000]
        throughput = await scenario_throughput(bench, 2.0 if args.quick else 3.0, rates)
        print("(c) platform time to first token …", flush=True)
        ttft = await scenario_ttft(bench, 10 if args.quick else 30)
        print("(d) concurrent runs …", flush=True)
        concurrent = await scenario_concurrent(bench, 50 if args.quick else 200, 120)
    finally:
        await bench.http.aclose()
    return {"overhead": overhead, "throughput": throughput, "ttft": ttft, "concurrent": concurrent}


def report(results: dict[str, Any]) -> None:
    o, t, c = results["overhead"], results["ttft"], results["concurrent"]
    sustained = [
        r["achieved_tps"]
        for r in results["throughput"]
        if r["zero_loss_in_order"] and r["achieved_tps"] >= 0.95 * r["offered_tps"]
    ]
    print("\n## Token streaming (bench/token_stream.py)\n")
    print("| figure | value | target |")
    print("|---|---|---|")
    print(
        f"| per-token overhead, emission -> SSE receipt, at 1,000 tok/s ({o['count']} tokens) | "
        f"p50 {o['p50_ms']:.1f} ms, p99 {o['p99_ms']:.1f} ms, max {o['max_ms']:.1f} ms "
        f"(zero loss: {o['zero_loss_in_order']}) | p99 < 50 ms |"
    )
    best = max(sustained) if sustained else float("nan")
    print(f"| highest sustained tokens/s on one stream, zero loss | {best:,.0f} | ≥ 2,000 |")
    for r in results["throughput"]:
        print(
            f"| · offered {r['offered_tps']:,}/s ({r['count']:,} tokens) | achieved "
            f"{r['achieved_tps']:,.0f}/s, zero loss {r['zero_loss_in_order']}, "
            f"p99 {r['p99_ms']:.1f} ms | |"
        )
    print(
        f"| platform TTFT, POST -> first token (provider delay 0), {t['runs']} runs | "
        f"p50 {t['ttft_p50_ms']:.0f} ms, p90 {t['ttft_p90_ms']:.0f} ms "
        f"(POST -> first emission p50 {t['post_to_first_emission_p50_ms']:.0f} ms) | p50 < 150 ms |"
    )
    print(
        f"| {c['runs']} concurrent runs (50 tokens each) | {c['completed']}/{c['runs']} completed "
        f"({c['completion_rate']:.0%}); all accepted in {c['accept_all_s']:.1f} s, all done in "
        f"{c['all_done_s']:.1f} s | 100% |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--role", choices=["worker"], default=None)
    args = parser.parse_args()
    if args.role == "worker":
        run_worker()
        return

    from bench.stack import embedded_stack

    with embedded_stack("token-bench", [__file__, "--role", "worker"]) as stack:
        results = asyncio.run(measure(args, stack.api_url, stack.database_url))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "token_stream.json").write_text(json.dumps(results, indent=2))
        report(results)


if __name__ == "__main__":
    main()
