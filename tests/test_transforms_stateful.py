"""Transform engine: aggregate, window, batch, chaining and checkpoint state (pure unit tests)."""

from __future__ import annotations

import json
import random
from datetime import datetime

import pytest

from deeployd.pipelines.transforms import (
    ChainOutput,
    ChainState,
    ConfigError,
    Item,
    OutItem,
    TransformChain,
    compile_chain,
)

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00.000Z, a whole minute
ISO = {
    -30_000: "2025-11-24T15:59:30.000Z",
    0: "2025-11-24T16:00:00.000Z",
    15_000: "2025-11-24T16:00:15.000Z",
    16_000: "2025-11-24T16:00:16.000Z",
    6_000: "2025-11-24T16:00:06.000Z",
    25_000: "2025-11-24T16:00:25.000Z",
    30_000: "2025-11-24T16:00:30.000Z",
    60_000: "2025-11-24T16:01:00.000Z",
    90_000: "2025-11-24T16:01:30.000Z",
    120_000: "2025-11-24T16:02:00.000Z",
}


class Feed:
    """Drives a chain like the pipeline workflow does, round-tripping the state through JSON."""

    def __init__(self, transforms: list[dict]) -> None:
        self.chain: TransformChain = compile_chain(transforms)
        self.state: ChainState = self.chain.initial_state()
        self.offset = 0

    def _keep(self, out: ChainOutput) -> ChainOutput:
        self.state = ChainState.model_validate_json(out.state.model_dump_json())
        return out

    def push(self, values: list[dict], now: int, ingest: int | None = None) -> ChainOutput:
        items = []
        for v in values:
            items.append(Item(self.offset, v, now if ingest is None else ingest))
            self.offset += 1
        return self._keep(self.chain.process(self.state, items, now))

    def advance(self, now: int) -> ChainOutput:
        return self._keep(self.chain.advance(self.state, now))

    def flush(self) -> ChainOutput:
        return self._keep(self.chain.flush(self.state))

    @property
    def deadline(self) -> int | None:
        return self.chain.next_deadline_ms(self.state)


def values(out: ChainOutput) -> list[dict]:
    return [o.value for o in out.outputs]


def config_error(transforms: list[dict]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compile_chain(transforms)
    return info.value


# ----------------------------------------------------------------------------- aggregate

DOCS_AGGREGATE = {
    "type": "aggregate",
    "config": {
        "groupBy": ["agentId"],
        "aggregations": [
            {"field": "cost", "function": "sum", "alias": "totalCost"},
            {"field": "tokens", "function": "avg", "alias": "avgTokens"},
            {"field": "*", "function": "count", "alias": "runCount"},
        ],
    },
}


def test_aggregate_keeps_running_totals_and_emits_updated_groups() -> None:
    feed = Feed([DOCS_AGGREGATE])
    out = feed.push(
        [
            {"agentId": "a", "cost": 1, "tokens": 10},
            {"agentId": "b", "cost": 2, "tokens": 20},
            {"agentId": "a", "cost": 3, "tokens": 30},
        ],
        now=T0,
    )
    assert out.outputs == [
        OutItem({"agentId": "a", "totalCost": 4, "avgTokens": 20.0, "runCount": 2}, 0, 2, T0),
        OutItem({"agentId": "b", "totalCost": 2, "avgTokens": 20.0, "runCount": 1}, 1, 1, T0),
    ]
    # next batch: only the touched group, cumulative, avg exact across batches (45 / 3)
    out = feed.push([{"agentId": "a", "cost": 5, "tokens": 5}], now=T0 + 1000)
    assert out.outputs == [
        OutItem({"agentId": "a", "totalCost": 9, "avgTokens": 15.0, "runCount": 3}, 3, 3, T0 + 1000)
    ]
    assert feed.deadline is None  # running aggregates need no timer
    assert values(feed.flush()) == []  # nothing pending: every update was already emitted


def test_aggregate_default_aliases_nested_group_keys_and_min_max() -> None:
    feed = Feed(
        [
            {
                "type": "aggregate",
                "config": {
                    "groupBy": ["user.id"],
                    "aggregations": [
                        {"field": "*", "function": "count"},
                        {"field": "cost", "function": "sum"},
                        {"field": "run.latencyMs", "function": "max"},
                        {"field": "at", "function": "min"},
                        {"field": "cost", "function": "count"},
                    ],
                },
            }
        ]
    )
    out = feed.push(
        [
            {"user": {"id": 1}, "cost": 1.5, "run": {"latencyMs": 30}, "at": "2025-01-02"},
            {"user": {"id": 1}, "run": {"latencyMs": 70}, "at": "2025-01-01"},  # no cost: skipped
        ],
        now=T0,
    )
    assert values(out) == [
        {
            "user": {"id": 1},
            "count": 2,
            "sum_cost": 1.5,
            "max_run_latencyMs": 70,
            "min_at": "2025-01-01",
            "count_cost": 1,
        }
    ]


def test_aggregate_bad_values_fail_the_item_only() -> None:
    feed = Feed([DOCS_AGGREGATE])
    out = feed.push(
        [
            {"agentId": "a", "cost": 1},
            {"agentId": "a", "cost": "lots"},
            {"agentId": "a", "cost": 2},
        ],
        now=T0,
    )
    assert values(out) == [{"agentId": "a", "totalCost": 3, "avgTokens": None, "runCount": 2}]
    assert [(i.offset, reason) for i, reason in out.failed] == [
        (1, "totalCost: expected a number, got string")
    ]


def test_aggregate_group_limit_is_enforced() -> None:
    feed = Feed(
        [
            {
                "type": "aggregate",
                "config": {
                    "groupBy": ["k"],
                    "aggregations": [{"field": "*", "function": "count"}],
                    "maxGroups": 2,
                },
            }
        ]
    )
    out = feed.push([{"k": 1}, {"k": "1"}, {"k": 2}, {"k": 1}], now=T0)
    assert values(out) == [{"k": 1, "count": 2}, {"k": "1", "count": 1}]  # 1 and "1" differ
    assert [(i.offset, r) for i, r in out.failed] == [
        (2, "aggregate: too many groups (maxGroups=2)")
    ]


@pytest.mark.parametrize(
    ("aggregations", "loc", "msg"),
    [
        (
            [{"field": "x", "function": "median"}],
            (0, "function"),
            "unknown function 'median'; expected one of: sum, avg, count, min, max",
        ),
        (
            [{"field": "*", "function": "sum"}],
            (0, "field"),
            "'*' is only valid with count, not sum",
        ),
        (
            [
                {"field": "x", "function": "sum"},
                {"field": "y", "function": "max", "alias": "sum_x"},
            ],
            (1, "alias"),
            "duplicate output field 'sum_x'",
        ),
        ([{"function": "sum"}], (0, "field"), "Field required"),
    ],
)
def test_aggregate_config_errors(aggregations: list, loc: tuple, msg: str) -> None:
    err = config_error([{"type": "aggregate", "config": {"aggregations": aggregations}}])
    assert err.loc == ("transforms", 0, "config", "aggregations", *loc)
    assert err.msg == msg
    err = config_error([{"type": "aggregate", "config": {"aggregations": []}}])
    assert err.loc == ("transforms", 0, "config", "aggregations")


# ----------------------------------------------------------------------------- windows


def tumbling(**extra) -> dict:
    cfg = {
        "type": "tumbling",
        "size": 60_000,
        "groupBy": ["agentId"],
        "aggregations": [{"field": "cost", "function": "sum"}],
    }
    return {"type": "window", "config": {**cfg, **extra}}


def test_tumbling_processing_time_window_closes_on_time_and_rejects_late_items() -> None:
    feed = Feed([tumbling()])
    out = feed.push([{"agentId": "a", "cost": 1}], now=T0 + 1000)
    out = feed.push([{"agentId": "b", "cost": 2}, {"agentId": "a", "cost": 0.5}], now=T0 + 2000)
    assert values(out) == [] and feed.deadline == T0 + 60_000
    assert values(feed.advance(T0 + 59_999)) == []
    out = feed.push([{"agentId": "a", "cost": 4}], now=T0 + 61_000)  # next window; closes the first
    assert out.outputs == [
        OutItem(
            {"windowStart": ISO[0], "windowEnd": ISO[60_000], "agentId": "a", "sum_cost": 1.5},
            0,
            2,
            T0 + 1000,
        ),
        OutItem(
            {"windowStart": ISO[0], "windowEnd": ISO[60_000], "agentId": "b", "sum_cost": 2},
            1,
            1,
            T0 + 2000,
        ),
    ]
    assert feed.deadline == T0 + 120_000
    # an item ingested inside the closed window but processed only now is late, not re-aggregated
    out = feed.push([{"agentId": "a", "cost": 100}], now=T0 + 62_000, ingest=T0 + 5000)
    assert values(out) == [] and [i.offset for i in out.late] == [4]
    out = feed.advance(T0 + 120_000)
    assert values(out) == [
        {"windowStart": ISO[60_000], "windowEnd": ISO[120_000], "agentId": "a", "sum_cost": 4}
    ]
    assert feed.deadline is None


def test_processing_time_backlog_drained_in_chunks_loses_nothing() -> None:
    # The workflow reads a backlog in chunks long after the items were ingested: process() must
    # not close windows by now_ms (the next chunk still holds items of the same window).
    feed = Feed([tumbling()])
    late_now = T0 + 10 * 60_000
    out1 = feed.push([{"agentId": "a", "cost": 1}], now=late_now, ingest=T0 + 10_000)
    out2 = feed.push([{"agentId": "a", "cost": 2}], now=late_now, ingest=T0 + 50_000)
    assert values(out1) == values(out2) == [] and out2.late == []
    # the first item of the next window moves the (ingest-time) watermark past the window's end
    out3 = feed.push([{"agentId": "a", "cost": 4}], now=late_now, ingest=T0 + 60_000)
    assert values(out3) == [
        {"windowStart": ISO[0], "windowEnd": ISO[60_000], "agentId": "a", "sum_cost": 3}
    ]
    assert feed.deadline == T0 + 120_000 < late_now  # overdue: the timer closes it at once
    out4 = feed.advance(late_now)
    assert values(out4) == [
        {"windowStart": ISO[60_000], "windowEnd": ISO[120_000], "agentId": "a", "sum_cost": 4}
    ]


def test_processing_time_watermark_counts_items_a_filter_dropped() -> None:
    feed = Feed(
        [
            {"type": "filter", "config": {"field": "keep", "operator": "eq", "value": True}},
            tumbling(),
        ]
    )
    feed.push([{"keep": True, "agentId": "a", "cost": 1}], now=T0 + 1000)
    out = feed.push([{"keep": False}], now=T0 + 60_500)  # read from the log: all before it were too
    assert out.filtered == 1
    assert values(out) == [
        {"windowStart": ISO[0], "windowEnd": ISO[60_000], "agentId": "a", "sum_cost": 1}
    ]


def test_an_idle_process_call_is_advance() -> None:
    chain = compile_chain([tumbling(), {"type": "batch", "config": {"size": 10, "timeout": 50}}])
    state = chain.process(
        chain.initial_state(), [Item(0, {"agentId": "a", "cost": 2}, T0)], T0
    ).state
    assert chain.next_deadline_ms(state) == T0 + 60_000
    idle = chain.process(state, [], T0 + 60_000)
    assert idle == chain.advance(state, T0 + 60_000)
    # the window row went on into the batch, which now waits for its own timeout
    assert values(idle) == [] and chain.next_deadline_ms(idle.state) == T0 + 60_050
    out = chain.process(idle.state, [], T0 + 60_050)
    assert values(out) == [
        {
            "items": [
                {"windowStart": ISO[0], "windowEnd": ISO[60_000], "agentId": "a", "sum_cost": 2}
            ],
            "count": 1,
        }
    ]


def test_processing_time_allowed_lateness_absorbs_ingest_jitter() -> None:
    feed = Feed([tumbling(allowedLatenessMs=2000)])
    feed.push([{"agentId": "a", "cost": 1}], now=T0 + 60_500, ingest=T0 + 60_500)
    out = feed.push([{"agentId": "a", "cost": 2}], now=T0 + 60_600, ingest=T0 + 59_900)
    assert out.late == [] and feed.deadline == T0 + 62_000
    assert values(feed.advance(T0 + 62_000)) == [
        {"windowStart": ISO[0], "windowEnd": ISO[60_000], "agentId": "a", "sum_cost": 2}
    ]


def test_sliding_window_assigns_items_to_every_overlapping_window() -> None:
    feed = Feed(
        [{"type": "window", "config": {"type": "sliding", "size": 60_000, "slide": 30_000}}]
    )
    feed.push([{"x": 1}], now=T0 + 40_000)  # windows [T0, T0+60s) and [T0+30s, T0+90s)
    feed.push([{"x": 2}], now=T0 + 50_000)
    # ingested at T0+10s: [T0-30s, T0+30s) already closed (clock T0+50s), [T0, T0+60s) is open
    out = feed.push([{"x": 3}], now=T0 + 50_000, ingest=T0 + 10_000)
    assert values(out) == [] and out.late == []
    out = feed.push([{"x": 4}], now=T0 + 50_000, ingest=T0 - 20_000)  # all its windows closed
    assert [i.value for i in out.late] == [{"x": 4}]
    assert values(feed.flush()) == [
        {"windowStart": ISO[0], "windowEnd": ISO[60_000], "count": 3},
        {"windowStart": ISO[30_000], "windowEnd": ISO[90_000], "count": 2},
    ]


def test_session_windows_per_group_close_after_the_gap() -> None:
    feed = Feed(
        [
            {
                "type": "window",
                "config": {
                    "type": "session",
                    "gap": 10_000,
                    "groupBy": ["user"],
                    "aggregations": [{"field": "*", "function": "count", "alias": "events"}],
                },
            }
        ]
    )
    feed.push([{"user": "u1"}], now=T0)
    feed.push([{"user": "u1"}], now=T0 + 5000)
    feed.push([{"user": "u2"}], now=T0 + 6000)
    assert feed.deadline == T0 + 15_000
    out = feed.push([{"user": "u1"}], now=T0 + 30_000)
    assert out.outputs == [
        OutItem(
            {"windowStart": ISO[0], "windowEnd": ISO[15_000], "user": "u1", "events": 2}, 0, 1, T0
        ),
        OutItem(
            {"windowStart": ISO[6_000], "windowEnd": ISO[16_000], "user": "u2", "events": 1},
            2,
            2,
            T0 + 6000,
        ),
    ]
    assert feed.deadline == T0 + 40_000


def test_session_window_bridging_item_merges_two_sessions_in_event_time() -> None:
    feed = Feed(
        [
            {
                "type": "window",
                "config": {
                    "type": "session",
                    "gap": 10_000,
                    "timeField": "ts",
                    "allowedLatenessMs": 10_000,
                    "aggregations": [
                        {"field": "v", "function": "sum"},
                        {"field": "v", "function": "max"},
                    ],
                },
            }
        ]
    )
    feed.push([{"ts": T0, "v": 1}, {"ts": T0 + 15_000, "v": 2}], now=T0)
    assert feed.deadline == T0 + 20_000  # first session [0s, 10s) + lateness
    feed.push([{"ts": T0 + 8_000, "v": 4}], now=T0)  # [8s, 18s) overlaps both sessions
    assert feed.deadline == T0 + 35_000
    assert values(feed.advance(T0 + 34_999)) == []
    out = feed.advance(T0 + 35_000)
    assert values(out) == [
        {"windowStart": ISO[0], "windowEnd": ISO[25_000], "sum_v": 7, "max_v": 4}
    ]


def test_event_time_window_watermark_lateness_and_late_items() -> None:
    feed = Feed([tumbling(timeField="ts", allowedLatenessMs=5000)])
    now = T0  # the wall clock does not move here: the watermark (max event time) closes windows
    assert (
        values(
            feed.push(
                [
                    {"agentId": "a", "ts": T0 + 1000, "cost": 1},
                    {"agentId": "a", "ts": "2025-11-24T16:00:30Z", "cost": 2},
                ],
                now,
            )
        )
        == []
    )
    assert feed.deadline == T0 + 65_000  # window end + allowed lateness
    assert values(feed.push([{"agentId": "a", "ts": T0 + 62_000, "cost": 4}], now)) == []
    out = feed.push(
        [
            {
                "agentId": "a",
                "ts": T0 + 59_000,
                "cost": 8,
            },  # behind the watermark but within lateness
            {"agentId": "a", "ts": T0 + 66_000, "cost": 16},  # watermark passes 60s + 5s: closes
            {"agentId": "a", "ts": T0 + 10_000, "cost": 32},  # its window is closed: late
            {
                "agentId": "a",
                "ts": T0 + 61_000,
                "cost": 64,
            },  # older than the watermark, window open
            {"agentId": "a", "cost": 128},  # no timestamp: fails
        ],
        now,
    )
    assert values(out) == [
        {"windowStart": ISO[0], "windowEnd": ISO[60_000], "agentId": "a", "sum_cost": 11}
    ]
    assert [i.value["cost"] for i in out.late] == [32]
    assert [(i.offset, r) for i, r in out.failed] == [
        (7, "window: timeField 'ts' is missing or not a time")
    ]
    # the workflow's timer: now_ms >= windowEnd + allowedLatenessMs closes the second window
    assert feed.deadline == T0 + 125_000
    assert values(feed.advance(T0 + 124_999)) == []
    out = feed.advance(T0 + 125_000)
    assert values(out) == [
        {"windowStart": ISO[60_000], "windowEnd": ISO[120_000], "agentId": "a", "sum_cost": 84}
    ]
    assert (out.outputs[0].first_offset, out.outputs[0].last_offset) == (2, 6)


@pytest.mark.parametrize(
    ("config", "loc", "msg"),
    [
        (
            {"type": "hopping", "size": 10},
            "type",
            "unknown window type 'hopping'; expected one of: tumbling, sliding, session",
        ),
        ({"type": "tumbling"}, "size", "tumbling windows need 'size' (ms)"),
        (
            {"type": "sliding", "size": 10, "slide": 20},
            "slide",
            "'slide' must not be larger than 'size'",
        ),
        (
            {"type": "sliding", "size": 1000, "slide": 1},
            "slide",
            "size/slide must be at most 100 (windows per record)",
        ),
        ({"type": "session"}, "gap", "session windows need 'gap' (ms)"),
        (
            {"type": "session", "size": 10, "gap": 10},
            "size",
            "'size' is not used by session windows when 'gap' is set",
        ),
        (
            {"type": "tumbling", "size": 10, "allowedLatenessMs": -5},
            "allowedLatenessMs",
            "Input should be greater than or equal to 0",
        ),
        ({"type": "tumbling", "size": 0}, "size", "Input should be greater than or equal to 1"),
        ({"type": "tumbling", "size": 10, "groupBy": ["windowStart"]}, "groupBy", None),
    ],
)
def test_window_config_errors(config: dict, loc: str, msg: str | None) -> None:
    err = config_error(
        [
            {"type": "filter", "config": {"field": "a", "operator": "eq", "value": 1}},
            {"type": "window", "config": config},
        ]
    )
    assert err.loc[:4] == ("transforms", 1, "config", loc)
    if msg is not None:
        assert err.msg == msg


def test_window_open_window_limit() -> None:
    feed = Feed([tumbling(maxOpenWindows=2)])
    out = feed.push(
        [{"agentId": "a"}, {"agentId": "b"}, {"agentId": "c"}, {"agentId": "a"}], now=T0
    )
    assert [(i.offset, r) for i, r in out.failed] == [
        (2, "window: too many open windows (maxOpenWindows=2)")
    ]
    assert [v["agentId"] for v in values(feed.flush())] == ["a", "b"]


# ----------------------------------------------------------------------------- batch


def test_batch_emits_on_size_and_on_timeout() -> None:
    feed = Feed([{"type": "batch", "config": {"size": 3, "timeout": 1000}}])
    out = feed.push([{"i": i} for i in range(7)], now=T0)
    assert out.outputs == [
        OutItem({"items": [{"i": 0}, {"i": 1}, {"i": 2}], "count": 3}, 0, 2, T0),
        OutItem({"items": [{"i": 3}, {"i": 4}, {"i": 5}], "count": 3}, 3, 5, T0),
    ]
    assert feed.deadline == T0 + 1000
    assert values(feed.advance(T0 + 999)) == []
    out = feed.advance(T0 + 1000)
    assert out.outputs == [OutItem({"items": [{"i": 6}], "count": 1}, 6, 6, T0)]
    assert feed.deadline is None
    # the timeout counts from the first pending item's arrival, and expired items go out first
    feed.push([{"i": 7}], now=T0 + 5000)
    out = feed.push([{"i": 8}], now=T0 + 6000)
    assert values(out) == [{"items": [{"i": 7}], "count": 1}]
    assert values(feed.flush()) == [{"items": [{"i": 8}], "count": 1}]


def test_steps_after_a_batch_receive_the_batch_item() -> None:
    feed = Feed(
        [
            {"type": "batch", "config": {"size": 2, "timeout": 1000}},
            {"type": "map", "config": {"expression": {"n": "count", "firstId": "items.0.id"}}},
            {"type": "filter", "config": {"field": "n", "operator": "gte", "value": 2}},
        ]
    )
    out = feed.push([{"id": "x"}, {"id": "y"}, {"id": "z"}], now=T0)
    assert out.outputs == [OutItem({"n": 2, "firstId": "x"}, 0, 1, T0)]
    out = feed.advance(T0 + 1000)
    assert values(out) == [] and out.filtered == 1


def test_aggregate_after_batch_aggregates_each_batch() -> None:
    feed = Feed([{"type": "batch", "config": {"size": 3, "timeout": 1000}}, DOCS_AGGREGATE])
    out = feed.push([{"agentId": "a", "cost": c, "tokens": 1} for c in (1, 2, 3, 4)], now=T0)
    assert values(out) == [{"agentId": "a", "totalCost": 6, "avgTokens": 1.0, "runCount": 3}]
    out = feed.advance(T0 + 1000)
    assert out.outputs == [
        OutItem({"agentId": "a", "totalCost": 4, "avgTokens": 1.0, "runCount": 1}, 3, 3, T0)
    ]


def test_aggregate_after_window_aggregates_each_window() -> None:
    feed = Feed(
        [
            tumbling(),
            {
                "type": "aggregate",
                "config": {
                    "aggregations": [
                        {"field": "sum_cost", "function": "sum", "alias": "total"},
                        {"field": "*", "function": "count", "alias": "agents"},
                    ]
                },
            },
        ]
    )
    feed.push(
        [{"agentId": "a", "cost": 1}, {"agentId": "b", "cost": 2}, {"agentId": "a", "cost": 3}],
        now=T0,
    )
    out = feed.advance(T0 + 60_000)
    assert out.outputs == [
        OutItem(
            {"windowStart": ISO[0], "windowEnd": ISO[60_000], "total": 6, "agents": 2}, 0, 2, T0
        )
    ]


# ----------------------------------------------------------------------------- state


PIPELINE = [
    {"type": "filter", "config": {"field": "kind", "operator": "neq", "value": "noise"}},
    {
        "type": "map",
        "config": {"expression": {"agent": "agentId", "cost": "toNumber(cost)", "at": "at"}},
    },
    {
        "type": "window",
        "config": {
            "type": "session",
            "gap": 3000,
            "timeField": "at",
            "allowedLatenessMs": 1000,
            "groupBy": ["agent"],
            "aggregations": [
                {"field": "cost", "function": "sum"},
                {"field": "cost", "function": "avg"},
                {"field": "*", "function": "count"},
            ],
        },
    },
    {"type": "batch", "config": {"size": 4, "timeout": 2500}},
    {"type": "map", "config": {"expression": {"rows": "count", "first": "items.0"}}},
]


def _stream(seed: int) -> list[tuple[list[dict], int]]:
    rng = random.Random(seed)
    calls = []
    now = T0
    for _ in range(60):
        now += rng.randint(0, 2000)
        batch = [
            {
                "agentId": rng.choice("abcd"),
                "kind": rng.choice(["run", "run", "noise"]),
                "cost": rng.choice([1, 2.5, "3", "bad"]),
                "at": now - rng.randint(0, 6000),
            }
            for _ in range(rng.randint(0, 6))
        ]
        calls.append((batch, now))
    return calls


def _drive(roundtrip: bool) -> list[tuple]:
    chain = compile_chain(json.loads(json.dumps(PIPELINE)))
    state = chain.initial_state()
    seen: list[tuple] = []
    offset = 0
    for batch, now in _stream(7):
        items = [Item(offset + i, v, now) for i, v in enumerate(batch)]
        offset += len(items)
        for out in (chain.process(state, items, now), None):
            if out is None:
                deadline = chain.next_deadline_ms(state)
                if deadline is None or deadline > now:
                    continue
                out = chain.advance(state, now)
            seen.append(
                (
                    "out",
                    [(o.value, o.first_offset, o.last_offset, o.ingest_ms) for o in out.outputs],
                )
            )
            seen.append(("late", [i.offset for i in out.late]))
            seen.append(("failed", [(i.offset, r) for i, r in out.failed]))
            seen.append(("filtered", out.filtered))
            state = (
                ChainState.model_validate_json(out.state.model_dump_json())
                if roundtrip
                else out.state
            )
    seen.append(("flush", [o.value for o in chain.flush(state).outputs]))
    return seen


def test_state_round_trips_through_json_mid_stream_with_identical_results() -> None:
    direct = _drive(roundtrip=False)
    assert direct == _drive(roundtrip=True)
    # the stream exercised every path
    assert any(kind == "out" and rows for kind, rows in direct)
    assert any(kind == "late" and rows for kind, rows in direct)
    assert any(kind == "failed" and rows for kind, rows in direct)


def test_process_never_mutates_its_input_state() -> None:
    chain = compile_chain(
        [DOCS_AGGREGATE, {"type": "batch", "config": {"size": 10, "timeout": 100}}]
    )
    state = chain.process(
        chain.initial_state(), [Item(0, {"agentId": "a", "cost": 1, "tokens": 2}, T0)], T0
    ).state
    before = state.model_dump_json()
    first = chain.process(state, [Item(1, {"agentId": "a", "cost": 5, "tokens": 2}, T0)], T0 + 10)
    assert state.model_dump_json() == before
    again = chain.process(state, [Item(1, {"agentId": "a", "cost": 5, "tokens": 2}, T0)], T0 + 10)
    assert first.state == again.state
    assert chain.flush(first.state).outputs[0].value == {
        "items": [
            {"agentId": "a", "totalCost": 1, "avgTokens": 2.0, "runCount": 1},
            {"agentId": "a", "totalCost": 6, "avgTokens": 2.0, "runCount": 2},
        ],
        "count": 2,
    }


def test_state_of_another_chain_is_rejected_clearly() -> None:
    aggregate = compile_chain([DOCS_AGGREGATE])
    batch = compile_chain([{"type": "batch", "config": {"size": 2}}])
    with pytest.raises(ValueError, match="does not belong to this transform chain"):
        batch.process(aggregate.initial_state(), [Item(0, {}, T0)], T0)


def _reference_windows(kind: str, events: list[tuple[str, int, int]]) -> list[tuple]:
    """Brute-force windows over (group, ts, value): [(group, start, end, count, sum)]."""
    out = []
    for g in sorted({e[0] for e in events}):
        mine = sorted((ts, v) for grp, ts, v in events if grp == g)
        if kind == "session":
            sessions: list[list] = []
            for ts, v in mine:
                if sessions and ts < sessions[-1][1] + 1000:
                    sessions[-1][1] = ts
                    sessions[-1][2].append(v)
                else:
                    sessions.append([ts, ts, [v]])
            out += [(g, s, last + 1000, len(vs), sum(vs)) for s, last, vs in sessions]
        else:
            size, slide = (3000, 3000) if kind == "tumbling" else (3000, 1000)
            starts = sorted(
                {s for ts, _ in mine for s in range(ts - ts % slide, ts - size, -slide)}
            )
            for s in starts:
                vs = [v for ts, v in mine if s <= ts < s + size]
                out.append((g, s, s + size, len(vs), sum(vs)))
    return sorted(out)


@pytest.mark.parametrize("kind", ["tumbling", "sliding", "session"])
def test_windows_match_a_brute_force_reference_in_any_arrival_order(kind: str) -> None:
    rng = random.Random(kind)
    events = [(rng.choice("xy"), T0 + rng.randrange(20_000), rng.randrange(10)) for _ in range(300)]
    shape = {
        "tumbling": {"size": 3000},
        "sliding": {"size": 3000, "slide": 1000},
        "session": {"gap": 1000},
    }[kind]
    config = {
        "type": kind,
        **shape,
        "timeField": "ts",
        "allowedLatenessMs": 10**9,  # nothing closes before the flush: arrival order is free
        "groupBy": ["g"],
        "aggregations": [{"field": "*", "function": "count"}, {"field": "v", "function": "sum"}],
    }
    feed = Feed([{"type": "window", "config": config}])
    shuffled = events[:]
    rng.shuffle(shuffled)
    while shuffled:
        n = rng.randint(1, 40)
        chunk, shuffled = shuffled[:n], shuffled[n:]
        assert values(feed.push([{"g": g, "ts": ts, "v": v} for g, ts, v in chunk], now=T0)) == []
    rows = values(feed.flush())
    got = sorted(
        (r["g"], _ms(r["windowStart"]), _ms(r["windowEnd"]), r["count"], r["sum_v"]) for r in rows
    )
    assert got == _reference_windows(kind, events)


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


# ----------------------------------------------------------------------------- multi-field groupBy

TWO_FIELDS = {
    "groupBy": ["agent_id", "date"],
    "aggregations": [
        {"field": "*", "function": "count", "alias": "runs"},
        {"field": "cost", "function": "sum", "alias": "cost"},
    ],
}


def test_two_field_group_by_keys_hold_no_control_characters_and_rows_name_each_field() -> None:
    feed = Feed([{"type": "aggregate", "config": TWO_FIELDS}])
    out = feed.push(
        [
            {"agent_id": "a", "date": "2026-12-01", "cost": 1},
            {"agent_id": "a", "date": "2026-12-02", "cost": 2},
            {"agent_id": "a", "date": "2026-12-01", "cost": 4},
        ],
        T0,
    )
    assert sorted(values(out), key=lambda r: r["date"]) == [
        {"agent_id": "a", "date": "2026-12-01", "runs": 2, "cost": 5},
        {"agent_id": "a", "date": "2026-12-02", "runs": 1, "cost": 2},
    ]
    keys = list(feed.state.steps[0]["groups"])
    assert keys == ['["a","2026-12-01"]', '["a","2026-12-02"]']
    text = feed.state.model_dump_json()
    assert "\\u0000" not in text and all(c >= " " for c in text)


def test_aggregate_state_saved_with_legacy_keys_still_loads_and_keeps_counting() -> None:
    chain = compile_chain([{"type": "aggregate", "config": TWO_FIELDS}])
    legacy = ChainState(steps={0: {"groups": {"sa\x00s2026-12-01": [["a", "2026-12-01"], [2, 5]]}}})
    out = chain.process(
        legacy, [Item(9, {"agent_id": "a", "date": "2026-12-01", "cost": 1}, T0)], T0
    )
    assert values(out) == [{"agent_id": "a", "date": "2026-12-01", "runs": 3, "cost": 6}]
    assert list(out.state.steps[0]["groups"]) == ['["a","2026-12-01"]']


def test_window_state_saved_with_legacy_keys_still_loads_and_closes_once() -> None:
    window = {"type": "window", "config": {"type": "tumbling", "size": 60_000, **TWO_FIELDS}}
    chain = compile_chain([window])
    entry = [T0, T0 + 60_000, ["a", "2026-12-01"], [1, 5], 1, 1, T0]
    legacy = ChainState(
        steps={
            0: {
                "wm": T0,
                "fired": None,
                "open": {f"{T0}|sa\x00s2026-12-01": entry},
                "due": T0 + 60_000,
            }
        }
    )
    out = chain.process(
        legacy, [Item(2, {"agent_id": "a", "date": "2026-12-01", "cost": 2}, T0 + 1)], T0 + 1
    )
    assert out.outputs == [] and list(out.state.steps[0]["open"]) == [f'{T0}|["a","2026-12-01"]']
    closed = chain.advance(out.state, T0 + 60_000)
    assert values(closed) == [
        {
            "windowStart": ISO[0],
            "windowEnd": ISO[60_000],
            "agent_id": "a",
            "date": "2026-12-01",
            "runs": 2,
            "cost": 7,
        }
    ]


def test_sliding_and_session_windows_with_only_the_documented_fields_get_defaults() -> None:
    docs_fields = {"size": 60_000, "aggregations": [{"field": "*", "function": "count"}]}
    sliding = Feed([{"type": "window", "config": {"type": "sliding", **docs_fields}}])
    sliding.push([{"x": 1}], T0 + 1_000)
    out = sliding.flush()
    # slide = size / 4: a record belongs to 4 windows, 15 s apart
    assert [r["windowStart"] for r in values(out)] == [
        "2025-11-24T15:59:15.000Z",
        "2025-11-24T15:59:30.000Z",
        "2025-11-24T15:59:45.000Z",
        ISO[0],
    ]
    session = Feed([{"type": "window", "config": {"type": "session", **docs_fields}}])
    session.push([{"x": 1}], T0)
    session.push([{"x": 2}], T0 + 59_999)  # within gap = size of the first: same session
    closed = session.push([{"x": 3}], T0 + 59_999 + 60_000)  # a full gap later: it closed
    assert [(r["windowStart"], r["count"]) for r in values(closed)] == [(ISO[0], 2)]
    assert [r["count"] for r in values(session.flush())] == [1]
    assert session.chain.steps[0].gap == 60_000  # type: ignore[attr-defined]
