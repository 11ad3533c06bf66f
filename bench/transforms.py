"""Transform engine throughput (pure CPython, no stack needed).

    .venv/bin/python bench/transforms.py [--items 10000] [--repeat 7]

Prints the best and median time per call and items/s (best: the machine may be shared) for
representative chains, plus the cost of a state checkpoint (JSON round trip) with many groups. The pipeline platform's end-to-end
goal is >= 20,000 items/s on 2 cores; the engine must be a small part of that budget.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from deeployd.pipelines.transforms import ChainState, Item, compile_chain

T0 = 1_764_000_000_000

FILTER = {"type": "filter", "config": {"field": "status", "operator": "eq", "value": "completed"}}
MAP = {
    "type": "map",
    "config": {
        "expression": {
            "event_type": '"agent_completion"',
            "agent_id": "agentId",
            "tokens": "tokenUsage.total",
            "cost": "cost",
            "timestamp": "completedAt",
            "name": 'concat(upper(user.firstName), " ", user.lastName)',
        }
    },
}
AGGS = [
    {"field": "cost", "function": "sum", "alias": "totalCost"},
    {"field": "tokenUsage.total", "function": "avg", "alias": "avgTokens"},
    {"field": "*", "function": "count", "alias": "runCount"},
]
CHAINS = {
    "filter -> map": [FILTER, MAP],
    "filter(regex)": [
        {
            "type": "filter",
            "config": {"field": "agentId", "operator": "regex", "value": "^agent-[0-4]"},
        }
    ],
    "aggregate (running, 50 groups)": [
        {"type": "aggregate", "config": {"groupBy": ["agentId"], "aggregations": AGGS}}
    ],
    "window tumbling 1s x 50 groups": [
        {
            "type": "window",
            "config": {
                "type": "tumbling",
                "size": 1000,
                "groupBy": ["agentId"],
                "aggregations": AGGS,
            },
        }
    ],
    "window sliding 4s/1s": [
        {
            "type": "window",
            "config": {"type": "sliding", "size": 4000, "slide": 1000, "aggregations": AGGS},
        }
    ],
    "window session (event time)": [
        {
            "type": "window",
            "config": {
                "type": "session",
                "gap": 500,
                "timeField": "ts",
                "groupBy": ["agentId"],
                "aggregations": AGGS,
            },
        }
    ],
    "batch 100": [{"type": "batch", "config": {"size": 100, "timeout": 5000}}],
    "filter -> map -> batch 500": [
        FILTER,
        MAP,
        {"type": "batch", "config": {"size": 500, "timeout": 5000}},
    ],
}


def make_items(n: int) -> list[Item]:
    rng = random.Random(1)
    items = []
    for i in range(n):
        ingest = T0 + i  # 1 item per ms: 10k items span 10 s
        value = {
            "status": "completed" if rng.random() < 0.9 else "failed",
            "agentId": f"agent-{rng.randrange(50)}",
            "tokenUsage": {"prompt": 10, "completion": 20, "total": rng.randrange(1000)},
            "cost": rng.random(),
            "completedAt": "2025-11-24T16:00:00Z",
            "ts": ingest,
            "user": {"firstName": "ada", "lastName": "Lovelace"},
        }
        items.append(Item(i, value, ingest))
    return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    items = make_items(args.items)
    print(
        f"{'chain':34} {'best ms':>8} {'median ms':>10} {'items/s (best)':>15}"
        f"   ({args.items} items per call, {args.repeat} runs)"
    )
    for name, transforms in CHAINS.items():
        chain = compile_chain(transforms)
        times = []
        for _ in range(args.repeat):
            state = chain.initial_state()
            started = time.perf_counter()
            chain.process(state, items, T0 + args.items)
            times.append(time.perf_counter() - started)
        best, med = min(times), statistics.median(times)
        print(f"{name:34} {best * 1000:8.1f} {med * 1000:10.1f} {args.items / best:15,.0f}")

    # checkpoint cost with a big running-aggregate state
    chain = compile_chain(
        [{"type": "aggregate", "config": {"groupBy": ["k"], "aggregations": AGGS}}]
    )
    many = [Item(i, {"k": i, "cost": 1.0, "tokenUsage": {"total": 3}}, T0) for i in range(10_000)]
    state = chain.process(chain.initial_state(), many, T0).state
    started = time.perf_counter()
    text = state.model_dump_json()
    ChainState.model_validate_json(text)
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    chain.process(state, items[:100], T0)
    step = time.perf_counter() - started
    print(
        f"checkpoint with 10,000 groups: {len(text) / 1024:.0f} KiB JSON, "
        f"round trip {elapsed * 1000:.1f} ms, process(100 items) {step * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
