"""`filter`: keep the records whose field satisfies `operator value`.

Semantics (no implicit type coercion, never raises per item):
- a missing field reads as null; `eq null` matches it, `neq "x"` matches it.
- eq/neq: JSON equality; 1 == 1.0, but true != 1 and "1" != 1.
- gt/gte/lt/lte: number vs number, or string vs string (lexicographic: works for ISO-8601
  timestamps); any other pairing (string vs number, null, ...) does not match.
- contains: substring for a string field, element equality for an array field, key presence for
  an object field; anything else does not match.
- in: the field equals one of the values of the config's list.
- regex: RE2 search (unanchored: use ^...$ to match the whole string) on string fields only;
  RE2 runs in linear time, so no pattern can stall the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

from .configs import StrictConfig, validate_config
from .errors import ConfigError
from .expressions import is_number, values_equal
from .model import TRANSFORMS, Record, RunCtx, Step
from .paths import make_getter, split_path

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "regex")
MAX_PATTERN_LENGTH = 2000
MAX_IN_VALUES = 10_000

Predicate = Callable[[Any], bool]


class FilterConfig(StrictConfig):
    field: str
    operator: str
    value: Any = None


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # errors are reported as ConfigError, not on stderr
    options.never_capture = True  # we only need "does it match": cheaper matching
    return options


def _regex_predicate(compiled: Any) -> Predicate:
    """`search(x) is not None` for strings; skips the wrapper's Match-object building when the
    binding exposes its RE2 object (6x faster per item), checked once here, else the public API."""
    search = compiled.search
    raw = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if raw is not None and anchor is not None and hasattr(raw, "Match"):

        def fast(x: Any) -> bool:
            if type(x) is not str:
                return False
            b = x.encode("utf-8", "surrogatepass")
            return bool(raw.Match(anchor, b, 0, len(b))[0][0] != -1)

        try:
            probes = ("", "a", "é ü", "agent-42", "x" * 100)
            if all(fast(t) == (search(t) is not None) for t in probes):
                return fast
        except Exception:  # a binding without this private API: use the public one
            pass

    def public(x: Any) -> bool:
        try:
            return type(x) is str and search(x) is not None
        except UnicodeEncodeError:  # a lone surrogate (valid in JSON, not in UTF-8)
            return False

    return public


def _eq_predicate(value: Any) -> Predicate:
    if value is None:
        return lambda x: x is None
    if type(value) is bool:
        return lambda x: x is value
    if is_number(value):
        return lambda x: (type(x) is int or type(x) is float) and x == value
    if type(value) is str:
        return lambda x: x == value
    return lambda x: values_equal(x, value)


def _in_key(x: Any) -> Any:
    # Python's set treats True == 1; JSON does not, so booleans get their own key space.
    return ("bool", x) if type(x) is bool else x


def _in_predicate(values: list) -> Predicate:
    keys = set()
    others = []
    for v in values:
        if isinstance(v, dict | list):
            others.append(v)
        else:
            keys.add(_in_key(v))

    def pred(x: Any) -> bool:
        if isinstance(x, dict | list):
            return any(values_equal(x, o) for o in others)
        return _in_key(x) in keys

    return pred


def _contains_predicate(value: Any) -> Predicate:
    def pred(x: Any) -> bool:
        t = type(x)
        if t is str:
            return type(value) is str and value in x
        if t is list:
            return any(values_equal(e, value) for e in x)
        if t is dict:
            return type(value) is str and value in x
        return False

    return pred


def _ordering_predicate(op: str, value: Any, loc: tuple) -> Predicate:
    if is_number(value):
        if op == "gt":
            return lambda x: (type(x) is int or type(x) is float) and x > value
        if op == "gte":
            return lambda x: (type(x) is int or type(x) is float) and x >= value
        if op == "lt":
            return lambda x: (type(x) is int or type(x) is float) and x < value
        return lambda x: (type(x) is int or type(x) is float) and x <= value
    if type(value) is str:
        if op == "gt":
            return lambda x: type(x) is str and x > value
        if op == "gte":
            return lambda x: type(x) is str and x >= value
        if op == "lt":
            return lambda x: type(x) is str and x < value
        return lambda x: type(x) is str and x <= value
    raise ConfigError((*loc, "value"), f"operator '{op}' needs a number or string value")


def build_predicate(op: str, value: Any, loc: tuple[str | int, ...]) -> Predicate:
    """Compile `operator value` once; `loc` is the config's location (for errors)."""
    if op == "eq":
        return _eq_predicate(value)
    if op == "neq":
        eq = _eq_predicate(value)
        return lambda x: not eq(x)
    if op in ("gt", "gte", "lt", "lte"):
        return _ordering_predicate(op, value, loc)
    if op == "contains":
        if value is None or isinstance(value, dict | list):
            raise ConfigError(
                (*loc, "value"), "operator 'contains' needs a string/number/boolean value"
            )
        return _contains_predicate(value)
    if op == "in":
        if not isinstance(value, list):
            raise ConfigError((*loc, "value"), "operator 'in' needs a list of values")
        if len(value) > MAX_IN_VALUES:
            raise ConfigError((*loc, "value"), f"at most {MAX_IN_VALUES} values")
        return _in_predicate(value)
    if op == "regex":
        if not isinstance(value, str):
            raise ConfigError((*loc, "value"), "operator 'regex' needs a pattern string")
        if len(value) > MAX_PATTERN_LENGTH:
            raise ConfigError(
                (*loc, "value"), f"pattern longer than {MAX_PATTERN_LENGTH} characters"
            )
        try:
            compiled = re2.compile(value, _re2_options())
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "invalid"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise ConfigError((*loc, "value"), f"invalid regular expression: {reason}") from None
        return _regex_predicate(compiled)
    raise ConfigError(
        (*loc, "operator"), f"unknown operator '{op}'; expected one of: {', '.join(OPERATORS)}"
    )


@TRANSFORMS.register("filter")
class FilterStep(Step):
    def __init__(self, index: int, raw: Any, upstream: str | None = None) -> None:
        self.index = index
        loc = ("transforms", index, "config")
        cfg = validate_config(FilterConfig, raw, loc)
        try:
            split_path(cfg.field)
        except ValueError as exc:
            raise ConfigError((*loc, "field"), str(exc)) from None
        self.config = cfg
        self.get = make_getter(cfg.field)
        self.pred = build_predicate(cfg.operator, cfg.value, loc)

    def process(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        get, pred = self.get, self.pred
        kept = [r for r in recs if pred(get(r[0]))]
        ctx.filtered += len(recs) - len(kept)
        return kept
