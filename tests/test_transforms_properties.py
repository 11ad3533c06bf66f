"""Property-based tests of the stateful transforms over any item shape: unicode (NUL, lone
surrogates, emoji, RTL), nulls, nested objects, numbers at the edges, keys with dots and spaces,
1-3 groupBy fields. Every item is counted exactly once, whatever the batch split, and the state
between batches always survives JSON, PostgreSQL jsonb and Temporal's pydantic payloads."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from deeployd.pipelines.destinations import unstorable_reason
from deeployd.pipelines.runtime import PipelineState, load_chain_state, store_chain_state
from deeployd.pipelines.transforms import ChainOutput, ChainState, Item, compile_chain
from deeployd.pipelines.transforms.aggs import Aggregations
from tests.pipeline_helpers import group_of

T0 = 1_764_000_000_000
SIZE = 10_000

# Strings: any code point (NUL and lone surrogates included), plus a few pointed examples.
TEXT = st.one_of(
    st.text(st.characters(codec=None, min_codepoint=0), max_size=6),
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "x\udfff", "😀", "שלום", "مرحبا", "a.b c"]),
)
NUMBER = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -0.0, 1.0, 2**53 + 1, 1.7976931348623157e308, -5e-324, 1e-300]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
# groupBy paths: plain, with a space, nested (dotted); items also carry keys with dots/spaces.
GROUP_PATHS = ["agent", "the date", "meta.region"]


@st.composite
def items(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=25))):
        value: dict[str, Any] = {
            "agent": draw(st.one_of(SCALAR, st.sampled_from(["a", "b"]))),
            "the date": draw(st.one_of(SCALAR, st.sampled_from(["2026-12-01", None]))),
            "meta": draw(
                st.one_of(
                    st.fixed_dictionaries({"region": VALUE}),
                    st.none(),
                    st.sampled_from([{"region": "eu"}, {"region": "us"}]),
                )
            ),
            "cost": draw(st.integers(min_value=-(10**6), max_value=10**6)),
            "a.b": draw(VALUE),
            "noise here": draw(VALUE),
        }
        out.append(value)
    return out


def row_group(row: dict[str, Any], paths: list[str]) -> str:
    return group_of(row, paths)


def assert_postgres_safe(text: str) -> None:
    """What jsonb accepts: no NUL, no lone surrogate, no NaN/Infinity anywhere."""
    text.encode("utf-8")
    value = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in a stored state"))
    assert unstorable_reason(value) is None


def through_stores(state: ChainState) -> ChainState:
    """What the pipeline does between batches: escape, PostgreSQL-safe JSON text, a Temporal
    (pydantic) payload, and back."""
    stored, escaped, text = store_chain_state(state.model_dump())
    assert_postgres_safe(text)
    payload = to_json(PipelineState(chain_state=stored, chain_state_escaped=escaped))
    back = PipelineState.model_validate_json(payload)
    assert back.chain_state is not None
    return ChainState.model_validate(load_chain_state(back.chain_state, back.chain_state_escaped))


def run(
    transforms: list[dict[str, Any]],
    values: list[dict[str, Any]],
    cuts: list[int],
    step_ms: list[int],
) -> list[ChainOutput]:
    chain = compile_chain(transforms)
    state = chain.initial_state()
    outs: list[ChainOutput] = []
    batch: list[Item] = []
    t = T0
    for offset, value in enumerate(values, start=1):
        t += step_ms[offset % len(step_ms)]
        batch.append(Item(offset=offset, value=value, ingest_ms=t))
        if offset in cuts or offset == len(values):
            out = chain.process(state, batch, t)
            outs.append(out)
            state = through_stores(out.state)
            batch = []
    outs.append(chain.flush(state))
    return outs


def common(outs: list[ChainOutput]) -> list[dict[str, Any]]:
    for out in outs:
        assert out.failed == [] and out.late == []
        for o in out.outputs:
            json.dumps(o.value)  # outputs stay JSON
    return [o.value for out in outs for o in out.outputs]


GROUP_BY = st.lists(st.sampled_from(GROUP_PATHS), min_size=1, max_size=3, unique=True)
CUTS = st.lists(st.integers(min_value=1, max_value=25), max_size=6)
STEPS = st.lists(st.integers(min_value=0, max_value=2 * SIZE), min_size=1, max_size=5)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(values=items(), group_by=GROUP_BY, cuts=CUTS)
def test_aggregate_counts_every_item_once_per_group(
    values: list[dict[str, Any]], group_by: list[str], cuts: list[int]
) -> None:
    transforms = [
        {
            "type": "aggregate",
            "config": {
                "groupBy": group_by,
                "aggregations": [
                    {"field": "*", "function": "count", "alias": "n"},
                    {"field": "cost", "function": "sum", "alias": "total"},
                ],
            },
        }
    ]
    rows = common(run(transforms, values, cuts, [1]))
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # running totals: the last row of a group is its total
        latest[row_group(row, group_by)] = row
    expected = Counter(group_of(v, group_by) for v in values)
    assert {g: r["n"] for g, r in latest.items()} == dict(expected)
    assert sum(r["n"] for r in latest.values()) == len(values)
    totals: dict[str, int] = {}
    for v in values:
        totals[group_of(v, group_by)] = totals.get(group_of(v, group_by), 0) + v["cost"]
    assert {g: r["total"] for g, r in latest.items()} == totals


def window_transforms(kind: str, group_by: list[str]) -> list[dict[str, Any]]:
    # Only the docs' fields: sliding gets slide = size/4, session gets gap = size.
    return [
        {
            "type": "window",
            "config": {
                "type": kind,
                "size": SIZE,
                "groupBy": group_by,
                "aggregations": [{"field": "*", "function": "count", "alias": "n"}],
            },
        }
    ]


def ingest_times(n: int, steps: list[int]) -> list[int]:
    times, t = [], T0
    for offset in range(1, n + 1):
        t += steps[offset % len(steps)]
        times.append(t)
    return times


@PROPERTY
@given(values=items(), group_by=GROUP_BY, cuts=CUTS, steps=STEPS)
def test_tumbling_windows_count_every_item_once(
    values: list[dict[str, Any]], group_by: list[str], cuts: list[int], steps: list[int]
) -> None:
    rows = common(run(window_transforms("tumbling", group_by), values, cuts, steps))
    times = ingest_times(len(values), steps)
    expected = Counter(
        (t - t % SIZE, group_of(v, group_by)) for v, t in zip(values, times, strict=True)
    )
    got: Counter[tuple[int, str]] = Counter()
    for row in rows:
        start = int(_ms(row["windowStart"]))
        got[(start, row_group(row, group_by))] += row["n"]
    assert got == expected
    assert sum(row["n"] for row in rows) == len(values)


@PROPERTY
@given(values=items(), group_by=GROUP_BY, cuts=CUTS, steps=STEPS)
def test_sliding_windows_count_every_item_once_per_window(
    values: list[dict[str, Any]], group_by: list[str], cuts: list[int], steps: list[int]
) -> None:
    rows = common(run(window_transforms("sliding", group_by), values, cuts, steps))
    slide = SIZE // 4
    times = ingest_times(len(values), steps)
    expected: Counter[tuple[int, str]] = Counter()
    for v, t in zip(values, times, strict=True):
        start = t - t % slide
        while start > t - SIZE:
            expected[(start, group_of(v, group_by))] += 1
            start -= slide
    got: Counter[tuple[int, str]] = Counter()
    for row in rows:
        assert _ms(row["windowEnd"]) - _ms(row["windowStart"]) == SIZE
        got[(_ms(row["windowStart"]), row_group(row, group_by))] += row["n"]
    assert got == expected


@PROPERTY
@given(values=items(), group_by=GROUP_BY, cuts=CUTS, steps=STEPS)
def test_session_windows_count_every_item_once(
    values: list[dict[str, Any]], group_by: list[str], cuts: list[int], steps: list[int]
) -> None:
    rows = common(run(window_transforms("session", group_by), values, cuts, steps))
    times = ingest_times(len(values), steps)
    by_group: dict[str, list[int]] = {}
    for v, t in zip(values, times, strict=True):
        by_group.setdefault(group_of(v, group_by), []).append(t)
    expected: Counter[tuple[int, str]] = Counter()
    for group, ts in by_group.items():  # gap defaults to size: split where records are >= gap apart
        start = previous = ts[0]
        for t in ts:
            if t - previous >= SIZE:
                start = t
            expected[(start, group)] += 1
            previous = t
    got: Counter[tuple[int, str]] = Counter()
    for row in rows:
        got[(_ms(row["windowStart"]), row_group(row, group_by))] += row["n"]
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(values=st.lists(VALUE, min_size=0, max_size=3))
def test_group_keys_are_printable_ascii_and_tell_types_apart(values: list[Any]) -> None:
    key = Aggregations.group_key(values)
    assert all(32 <= ord(c) < 127 for c in key)
    # the key is exactly the values' canonical JSON, whichever way it was built
    assert key == json.dumps(values, separators=(",", ":"), sort_keys=True)
    assert not Aggregations.legacy_key(key)


@settings(max_examples=200, deadline=None)
@given(state=st.dictionaries(TEXT, VALUE, max_size=4))
def test_stored_chain_states_round_trip_exactly(state: dict[str, Any]) -> None:
    stored, escaped, text = store_chain_state({"steps": state})
    assert_postgres_safe(text)
    to_json(stored)
    restored = load_chain_state(json.loads(text), escaped)
    assert json.dumps(restored, sort_keys=True) == json.dumps({"steps": state}, sort_keys=True)


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
