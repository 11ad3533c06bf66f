"""Transform engine: compile_chain validation, filter operators, map expressions (pure unit tests)."""

from __future__ import annotations

import time

import pytest

from deeployd.pipelines.transforms import (
    ChainState,
    ConfigError,
    Item,
    OutItem,
    compile_chain,
)
from deeployd.pipelines.transforms.expressions import Call, Literal, Path, parse

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z


def run(transforms: list[dict], values: list[dict], now_ms: int = NOW):
    chain = compile_chain(transforms)
    items = [Item(offset=i, value=v, ingest_ms=now_ms - 10) for i, v in enumerate(values)]
    return chain.process(chain.initial_state(), items, now_ms)


def filt(field: str, operator: str, value) -> list[dict]:
    return [{"type": "filter", "config": {"field": field, "operator": operator, "value": value}}]


def kept(transforms: list[dict], values: list[dict]) -> list[dict]:
    return [o.value for o in run(transforms, values).outputs]


def config_error(transforms) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compile_chain(transforms)
    return info.value


# ----------------------------------------------------------------------------- the docs' example


def test_docs_pipeline_example_filters_and_maps() -> None:
    transforms = [
        {"type": "filter", "config": {"field": "status", "operator": "eq", "value": "completed"}},
        {
            "type": "map",
            "config": {
                "expression": {
                    "event_type": '"agent_completion"',
                    "agent_id": "agentId",
                    "tokens": "tokenUsage.total",
                    "cost": "cost",
                    "timestamp": "completedAt",
                }
            },
        },
    ]
    run_done = {
        "status": "completed",
        "agentId": "agent-123",
        "tokenUsage": {"prompt": 10, "completion": 32, "total": 42},
        "cost": 0.0021,
        "completedAt": "2025-11-24T16:00:00Z",
    }
    out = run(transforms, [run_done, {**run_done, "status": "failed"}])
    assert out.filtered == 1
    assert out.failed == [] and out.late == []
    assert out.outputs == [
        OutItem(
            value={
                "event_type": "agent_completion",
                "agent_id": "agent-123",
                "tokens": 42,
                "cost": 0.0021,
                "timestamp": "2025-11-24T16:00:00Z",
            },
            first_offset=0,
            last_offset=0,
            ingest_ms=NOW - 10,
        )
    ]


def test_docs_map_example_user_fields() -> None:
    expr = {
        "userId": "user.id",
        "userName": "upper(user.name)",
        "fullName": 'concat(user.firstName, " ", user.lastName)',
    }
    user = {"id": 7, "name": "ada", "firstName": "Ada", "lastName": "Lovelace"}
    assert kept([{"type": "map", "config": {"expression": expr}}], [{"user": user}]) == [
        {"userId": 7, "userName": "ADA", "fullName": "Ada Lovelace"}
    ]


# ----------------------------------------------------------------------------- filter operators


ROWS = [
    {"n": 1, "s": "apple", "tags": ["a", "b"], "obj": {"k": 1}},
    {"n": 5, "s": "banana", "tags": ["c"], "obj": {}},
    {"n": 10.5, "s": "cherry"},
    {"n": "5", "s": 5},
    {"s": None},
]


@pytest.mark.parametrize(
    ("operator", "value", "field", "expected"),
    [
        ("eq", 5, "n", [1]),  # "5" (a string) is not 5
        ("eq", "5", "n", [3]),
        ("eq", None, "n", [4]),  # missing reads as null
        ("neq", 5, "n", [0, 2, 3, 4]),
        ("gt", 1, "n", [1, 2]),  # the string "5" never compares with a number
        ("gte", 5, "n", [1, 2]),
        ("lt", 5, "n", [0]),
        ("lte", 5, "n", [0, 1]),
        ("gt", "b", "s", [1, 2]),  # strings compare lexicographically
        ("contains", "an", "s", [1]),
        ("contains", "c", "tags", [1]),
        ("contains", "k", "obj", [0]),
        ("in", ["apple", "cherry", 5], "s", [0, 2, 3]),
        ("regex", "^b.n", "s", [1]),
        ("regex", "rr", "s", [2]),
    ],
)
def test_filter_operators(operator: str, value, field: str, expected: list[int]) -> None:
    out = kept(filt(field, operator, value), ROWS)
    assert out == [ROWS[i] for i in expected]


def test_filter_booleans_are_not_numbers() -> None:
    rows = [{"v": True}, {"v": 1}, {"v": 1.0}, {"v": False}, {"v": 0}]
    assert kept(filt("v", "eq", True), rows) == [{"v": True}]
    assert kept(filt("v", "eq", 1), rows) == [{"v": 1}, {"v": 1.0}]
    assert kept(filt("v", "in", [True, 0]), rows) == [{"v": True}, {"v": 0}]


def test_filter_contains_and_in_with_structured_values() -> None:
    rows = [{"v": [1, 2, {"k": 1}]}, {"v": {"k": 1}}, {"v": [True]}, {"v": "1"}]
    assert kept(filt("v", "contains", 1), rows) == [rows[0]]  # true is not 1, "1" is a string
    assert kept(filt("v", "contains", True), rows) == [rows[2]]
    assert kept(filt("v", "in", [{"k": 1}, "1"]), rows) == [rows[1], rows[3]]


def test_filter_dotted_paths_and_list_indexes() -> None:
    rows = [
        {"user": {"name": "ada"}, "items": [{"id": "x1"}, {"id": "x2"}]},
        {"user": {"name": "bob"}, "items": []},
        {"user": "not-an-object"},
        {"items": {"0": {"id": "x1"}}},  # digit segments are keys on objects
    ]
    assert kept(filt("user.name", "eq", "ada"), rows) == [rows[0]]
    assert kept(filt("items.0.id", "eq", "x1"), rows) == [rows[0], rows[3]]
    assert kept(filt("items.1.id", "eq", "x2"), rows) == [rows[0]]


def test_filter_counts_filtered_and_keeps_offsets() -> None:
    out = run(filt("n", "gt", 2), [{"n": 1}, {"n": 3}, {"n": 2}, {"n": 4}])
    assert out.filtered == 2
    assert [(o.first_offset, o.last_offset) for o in out.outputs] == [(1, 1), (3, 3)]


def test_filter_regex_is_linear_time() -> None:
    # (a+)+$ on "aaaa...b" is the classic catastrophic-backtracking case; RE2 does not backtrack.
    rows = [{"s": "a" * 50_000 + "b"}, {"s": "aaaa"}]
    started = time.perf_counter()
    out = kept(filt("s", "regex", "(a+)+$"), rows)
    elapsed = time.perf_counter() - started
    assert out == [{"s": "aaaa"}]
    assert elapsed < 5  # Python's re would not finish this in our lifetime


def test_filter_unknown_operator_lists_valid_ones() -> None:
    err = config_error(filt("status", "like", "x"))
    assert err.loc == ("transforms", 0, "config", "operator")
    assert err.msg == (
        "unknown operator 'like'; expected one of: eq, neq, gt, gte, lt, lte, contains, in, regex"
    )


def test_filter_bad_regex_is_a_config_error_at_value() -> None:
    err = config_error(
        [{"type": "map", "config": {"expression": {"a": "a"}}}, *filt("s", "regex", "(ab")]
    )
    assert err.loc == ("transforms", 1, "config", "value")
    assert err.msg.startswith("invalid regular expression: missing )")


@pytest.mark.parametrize(
    ("config", "loc", "msg"),
    [
        (
            {"field": "s", "operator": "in", "value": "abc"},
            ("value",),
            "operator 'in' needs a list of values",
        ),
        (
            {"field": "s", "operator": "gt", "value": [1]},
            ("value",),
            "operator 'gt' needs a number or string value",
        ),
        (
            {"field": "s", "operator": "regex", "value": 3},
            ("value",),
            "operator 'regex' needs a pattern string",
        ),
        (
            {"field": "a..b", "operator": "eq", "value": 1},
            ("field",),
            "invalid field path 'a..b': empty segment",
        ),
        ({"operator": "eq", "value": 1}, ("field",), "Field required"),
        (
            {"field": "s", "operator": "eq", "value": 1, "opertor": "x"},
            ("opertor",),
            "unknown setting",
        ),
    ],
)
def test_filter_config_errors(config: dict, loc: tuple, msg: str) -> None:
    err = config_error([{"type": "filter", "config": config}])
    assert err.loc == ("transforms", 0, "config", *loc)
    assert err.msg == msg


def test_chain_level_config_errors() -> None:
    err = config_error([{"type": "explode", "config": {}}])
    assert err.loc == ("transforms", 0, "type")
    assert (
        err.msg
        == "unknown transform type 'explode'; expected one of: filter, map, aggregate, window, batch"
    )
    assert config_error([{"type": "filter"}]).loc == ("transforms", 0, "config")
    assert config_error({"type": "filter"}).loc == ("transforms",)  # type: ignore[arg-type]
    assert compile_chain([]).process(ChainState(), [Item(0, {"a": 1}, 5)], 10).outputs == [
        OutItem({"a": 1}, 0, 0, 5)
    ]


# ----------------------------------------------------------------------------- map errors


def map_error(expression: dict) -> ConfigError:
    """The error of a map at index 1 (after a valid filter)."""
    return config_error(
        [*filt("a", "eq", 1), {"type": "map", "config": {"expression": expression}}]
    )


def test_map_unknown_function_error_matches_docs_format() -> None:
    err = map_error(
        {"userId": "user.id", "fullName": 'concatt(user.firstName, " ", user.lastName)'}
    )
    assert err.loc == ("transforms", 1, "config", "expression", "fullName")
    assert err.msg == "unknown function 'concatt'"
    assert str(err) == "transforms[1].config.expression.fullName: unknown function 'concatt'"
    assert err.with_prefix("body").errors[0].loc == (
        "body",
        "transforms",
        1,
        "config",
        "expression",
        "fullName",
    )


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("upper(user.name))", "unexpected ')' at column 17"),
        ("concat(a, b", "unexpected end of expression at column 12"),
        ("concat(a,, b)", "unexpected ',' at column 10"),
        ("upper(a, b)", "function 'upper' expects 1 argument, got 2 at column 1"),
        ("concat()", "function 'concat' expects at least 1 argument, got 0 at column 1"),
        ("x(round(a, 1, 2))", "unknown function 'x'"),
        ("lower(round(a, 1, 2))", "function 'round' expects 1 to 2 arguments, got 3 at column 7"),
        ('"abc', "unterminated string starting at column 1"),
        ('"a\\qb"', "invalid escape '\\q' at column 3"),
        ("a + b", "unexpected character '+' at column 3"),
        ("user.", "expected a field name after '.' at column 5"),
        ("a b", "unexpected 'b' at column 3"),
        ("", "empty expression"),
        ("12abc", "invalid number at column 1"),
        ("user.toString(a)", "unknown function 'user.toString'"),
        ("upper(" * 40 + "a" + ")" * 40, "expression nested deeper than 32 calls"),
        ("a" * 5000, "expression longer than 4096 characters"),
    ],
)
def test_map_syntax_errors_have_positions(text: str, msg: str) -> None:
    err = map_error({"out": text})
    assert err.loc == ("transforms", 1, "config", "expression", "out")
    assert err.msg == msg


def test_map_output_name_conflicts_and_non_string_expressions() -> None:
    err = map_error({"a": "x", "a.b": "y"})
    assert err.loc == ("transforms", 1, "config", "expression", "a.b")
    assert err.msg == "output field 'a.b' conflicts with 'a'"
    err = map_error({"a": {"nested": "x"}})
    assert err.msg == "expected an expression string"
    assert map_error({}).loc == ("transforms", 1, "config", "expression")


# ----------------------------------------------------------------------------- expressions


def test_parser_builds_an_ast() -> None:
    assert parse('concat(user.firstName, " ", user.lastName)') == Call(
        "concat", (Path(("user", "firstName")), Literal(" "), Path(("user", "lastName"))), 1
    )
    assert parse('"agent_completion"') == Literal("agent_completion")
    assert parse("tokenUsage.total") == Path(("tokenUsage", "total"))
    assert parse("items.0.id") == Path(("items", "0", "id"))
    assert parse(" round( -1.5e2 , 0 ) ") == Call("round", (Literal(-150.0), Literal(0)), 2)
    assert parse("true") == Literal(True) and parse("null") == Literal(None)
    assert parse("'it\\'s'") == Literal("it's")
    assert parse('"\\u00e9\\n"') == Literal("é\n")


def evaluate(text: str, value: dict | None = None, now_ms: int = NOW):
    out = run([{"type": "map", "config": {"expression": {"r": text}}}], [value or {}], now_ms)
    if out.failed:
        return ("failed", out.failed[0][1])
    return out.outputs[0].value["r"]


V = {"s": "  Hi There ", "n": -2.5, "i": 7, "t": "12.5", "b": True, "lst": [1, 2, 3], "o": {"a": 1}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("upper(s)", "  HI THERE "),
        ("lower(trim(s))", "hi there"),
        ("upper(missing)", None),
        ('concat("n=", n, " i=", i, " b=", b, " x=", missing)', "n=-2.5 i=7 b=true x="),
        ('coalesce(missing, null, "fallback", i)', "fallback"),
        ("default(missing, 0)", 0),
        ("default(i, 0)", 7),
        ("toNumber(t)", 12.5),
        ('toNumber("42")', 42),
        ("toNumber(b)", 1),
        ('toNumber("abc", -1)', -1),
        ("toString(i)", "7"),
        ("toString(o)", '{"a":1}'),
        ("toString(2.0)", "2"),
        ("round(n)", -3),  # half away from zero
        ("round(2.5)", 3),
        ("round(1.005, 2)", 1.01),
        ("round(1234, -2)", 1200),
        ("floor(n)", -3),
        ("ceil(n)", -2),
        ("abs(n)", 2.5),
        ("len(s)", 11),
        ("len(lst)", 3),
        ("len(o)", 1),
        ("min(i, n, missing)", -2.5),
        ("max(i, n)", 7),
        ('substring("abcdef", 1, 3)', "bc"),
        ('substring("abcdef", -2)', "ef"),
        ('replace("a-b-c", "-", "+")', "a+b+c"),
        ('toBoolean("yes")', True),
        ("toBoolean(0)", False),
        ('if(b, "on", "off")', "on"),
        ('if(missing, "on", "off")', "off"),
        ('if(eq(i, 7), "seven", toNumber("not evaluated"))', "seven"),  # lazy branches
        ("if(not(isNull(missing)), 1)", None),
        ("add(i, 1)", 8),
        ("sub(i, n)", 9.5),
        ("mul(i, 2)", 14),
        ("div(i, 2)", 3.5),
        ("lst.1", 2),
        ("o", {"a": 1}),
        ("now()", "2025-11-24T16:00:00.000Z"),
        ("nowMs()", NOW),
        ("upper(concat(lower(s), toString(round(n))))", "  HI THERE -3"),
    ],
)
def test_expression_functions(text: str, expected) -> None:
    assert evaluate(text, V) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("toNumber(s)", 'r: toNumber: cannot convert string "  Hi There " to a number'),
        ("round(s)", 'r: round: expected a number, got string "  Hi There "'),
        ("div(i, 0)", "r: div: division by zero"),
        ("upper(o)", "r: upper: expected a string, got object"),
        ("toBoolean(s)", 'r: toBoolean: cannot convert string "  Hi There " to a boolean'),
        ("max(i, s)", "r: max: arguments must be all numbers or all strings"),
    ],
)
def test_expression_errors_fail_only_that_item(text: str, reason: str) -> None:
    assert evaluate(text, V) == ("failed", reason)


def test_map_failures_become_dead_letters_and_the_batch_goes_on() -> None:
    transforms = [
        {"type": "map", "config": {"expression": {"id": "id", "amount": "toNumber(amount)"}}}
    ]
    rows = [{"id": 1, "amount": "3"}, {"id": 2, "amount": "abc"}, {"id": 3, "amount": 4}]
    out = run(transforms, rows)
    assert [o.value for o in out.outputs] == [{"id": 1, "amount": 3}, {"id": 3, "amount": 4}]
    assert len(out.failed) == 1
    item, reason = out.failed[0]
    assert item == Item(offset=1, value=rows[1], ingest_ms=NOW - 10)  # the ORIGINAL item
    assert reason == 'amount: toNumber: cannot convert string "abc" to a number'


def test_map_dotted_outputs_build_nested_objects_and_constants() -> None:
    expr = {"user.id": "id", "user.name": "upper(name)", "meta.version": 2, "flag": True}
    assert kept([{"type": "map", "config": {"expression": expr}}], [{"id": 1, "name": "x"}]) == [
        {"user": {"id": 1, "name": "X"}, "meta": {"version": 2}, "flag": True}
    ]


def test_filter_then_map_of_ten_thousand_items_is_quick() -> None:
    # Not a timing assertion on the goal (bench/ has that); guards against per-item parsing.
    transforms = [
        *filt("status", "in", ["completed", "failed"]),
        {"type": "map", "config": {"expression": {"id": "id", "who": "upper(user.name)"}}},
    ]
    rows = [{"id": i, "status": "completed", "user": {"name": "x"}} for i in range(10_000)]
    out = run(transforms, rows)
    assert len(out.outputs) == 10_000 and out.outputs[-1].value == {"id": 9999, "who": "X"}
