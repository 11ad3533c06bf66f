"""Aggregation functions shared by `aggregate` and `window`: JSON-serialisable accumulators.

Accumulators per function (they live in ChainState, so they are plain JSON):
  count -> int, sum -> number, avg -> [sum, count] (exact across batches), min/max -> value|null.
Null/missing values are skipped (like SQL); `count` of a field counts its non-null values and
`count` of `*` counts records. sum/avg need numbers, min/max numbers or strings (ISO timestamps
compare correctly as strings): any other value fails that item (dead letter) and the item does
not touch any accumulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import Field

from .configs import StrictConfig
from .errors import ConfigError, StepError
from .expressions import is_number, type_name
from .paths import check_output_names, make_getter, set_path, split_path

FUNCTIONS = ("sum", "avg", "count", "min", "max")
MAX_GROUP_BY = 10
MAX_AGGREGATIONS = 50
# sort_keys: objects equal as JSON are one group; ensure_ascii: keys are printable ASCII only.
_key_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode


class AggregationConfig(StrictConfig):
    field: str
    function: str
    alias: str | None = None


class AggregationsMixin(StrictConfig):
    groupBy: list[str] = Field(default_factory=list, max_length=MAX_GROUP_BY)
    aggregations: list[AggregationConfig] = Field(min_length=1, max_length=MAX_AGGREGATIONS)


class Aggregations:
    """Compiled groupBy + aggregations of one step."""

    def __init__(
        self,
        group_by: list[str],
        aggregations: list[AggregationConfig],
        loc: tuple[str | int, ...],
        reserved: tuple[str, ...] = (),
    ) -> None:
        for j, path in enumerate(group_by):
            try:
                split_path(path)
            except ValueError as exc:
                raise ConfigError((*loc, "groupBy", j), str(exc)) from None
        self.group_paths = [split_path(p) for p in group_by]
        self.group_getters = [make_getter(p) for p in group_by]
        self.kinds: list[str] = []
        self.getters: list[Callable[[Any], Any] | None] = []
        self.aliases: list[str] = []
        names: dict[str, tuple[str | int, ...]] = {r: (*loc,) for r in reserved}
        for j, p in enumerate(group_by):
            if p in names:
                raise ConfigError((*loc, "groupBy", j), f"duplicate output field '{p}'")
            names[p] = (*loc, "groupBy", j)
        for j, agg in enumerate(aggregations):
            aloc = (*loc, "aggregations", j)
            if agg.function not in FUNCTIONS:
                raise ConfigError(
                    (*aloc, "function"),
                    f"unknown function '{agg.function}'; expected one of: {', '.join(FUNCTIONS)}",
                )
            if agg.field == "*":
                if agg.function != "count":
                    raise ConfigError(
                        (*aloc, "field"), f"'*' is only valid with count, not {agg.function}"
                    )
                getter = None
            else:
                try:
                    split_path(agg.field)
                except ValueError as exc:
                    raise ConfigError((*aloc, "field"), str(exc)) from None
                getter = make_getter(agg.field)
            alias = agg.alias
            if alias is None:
                alias = (
                    "count" if getter is None else f"{agg.function}_{agg.field.replace('.', '_')}"
                )
            if alias in names:
                where = (*aloc, "alias") if agg.alias is not None else (*aloc, "field")
                raise ConfigError(where, f"duplicate output field '{alias}'")
            names[alias] = (*aloc, "alias")
            self.kinds.append(agg.function)
            self.getters.append(getter)
            self.aliases.append(alias)
        bad = check_output_names(list(names))
        if bad:
            name, msg = next(iter(bad.items()))
            raise ConfigError(names[name], msg)
        self.alias_paths = [split_path(a) for a in self.aliases]
        self.has_minmax = any(k in ("min", "max") for k in self.kinds)
        self.flat = all(len(p) == 1 for p in self.group_paths + self.alias_paths)

    # ------------------------------------------------------------------ groups

    def group_values(self, value: Any) -> list:
        return [g(value) for g in self.group_getters]

    @staticmethod
    def group_key(values: list) -> str:
        """The group's state key: the JSON text of its group values (ASCII only, so no NUL or
        other control character: it survives JSON, PostgreSQL text/jsonb and Temporal payloads).

        JSON keeps types apart: 1, "1", true, 1.5 and null are different groups; objects are
        keyed with sorted keys so equal objects group together. The common values (plain ASCII
        strings, ints, null) are written directly: the same text json.dumps gives, 5x faster."""
        parts = []
        for v in values:
            t = type(v)
            if t is str and v.isascii() and v.isprintable() and '"' not in v and "\\" not in v:
                parts.append('"' + v + '"')
            elif t is int:
                parts.append(str(v))
            elif v is None:
                parts.append("null")
            else:
                return _key_json(values)
        return "[" + ",".join(parts) + "]"

    @staticmethod
    def legacy_key(key: str) -> bool:
        """Keys of states saved before the JSON encoding: NUL-joined typed parts
        ("s<text>", "i<int>", "n", "j<json>"), never starting with "["."""
        return not key.startswith("[")

    # ------------------------------------------------------------------ accumulators

    def new(self) -> list:
        return [
            [0, 0] if k == "avg" else (0 if k in ("count", "sum") else None) for k in self.kinds
        ]

    def copy(self, accs: list) -> list:
        return [list(a) if type(a) is list else a for a in accs]

    def extract(self, value: Any) -> list:
        """The aggregated field values of one record; raises StepError before any state change."""
        vals = []
        for kind, getter, alias in zip(self.kinds, self.getters, self.aliases, strict=True):
            v = True if getter is None else getter(value)
            if v is not None and kind != "count":
                if kind in ("sum", "avg"):
                    if not is_number(v):
                        raise StepError(f"{alias}: expected a number, got {type_name(v)}")
                elif not (is_number(v) or type(v) is str):
                    raise StepError(f"{alias}: expected a number or string, got {type_name(v)}")
            vals.append(v)
        return vals

    def check_compatible(self, accs: list, vals: list) -> None:
        if not self.has_minmax:
            return
        for kind, acc, v, alias in zip(self.kinds, accs, vals, self.aliases, strict=True):
            if kind in ("min", "max") and acc is not None and v is not None:
                if (type(acc) is str) != (type(v) is str):
                    raise StepError(f"{alias}: cannot compare {type_name(v)} with {type_name(acc)}")

    def add(self, accs: list, vals: list) -> None:
        """Fold extracted values into accs (in place)."""
        for i, kind in enumerate(self.kinds):
            v = vals[i]
            if v is None:
                continue
            if kind == "count":
                accs[i] += 1
            elif kind == "sum":
                accs[i] += v
            elif kind == "avg":
                acc = accs[i]
                acc[0] += v
                acc[1] += 1
            elif kind == "min":
                if accs[i] is None or v < accs[i]:
                    accs[i] = v
            elif accs[i] is None or v > accs[i]:
                accs[i] = v

    def merge(self, a: list, b: list) -> list:
        """Combine two accumulators (session windows bridged by a new item)."""
        out = []
        for kind, x, y in zip(self.kinds, a, b, strict=True):
            if kind in ("count", "sum"):
                out.append(x + y)
            elif kind == "avg":
                out.append([x[0] + y[0], x[1] + y[1]])
            elif x is None or y is None:
                out.append(y if x is None else x)
            elif (type(x) is str) != (type(y) is str):
                out.append(x)  # incomparable: keep the earlier session's value
            else:
                out.append(min(x, y) if kind == "min" else max(x, y))
        return out

    def results(self, accs: list) -> list:
        out = []
        for kind, acc in zip(self.kinds, accs, strict=True):
            if kind == "avg":
                out.append(acc[0] / acc[1] if acc[1] else None)
            else:
                out.append(acc)
        return out

    def row(self, group_values: list, accs: list, head: dict | None = None) -> dict:
        """`{**head, <group keys>, <aliases>}`; dotted names build nested objects."""
        row: dict = dict(head) if head else {}
        results = self.results(accs)
        if self.flat:
            for path, v in zip(self.group_paths, group_values, strict=True):
                row[path[0]] = v
            for path, v in zip(self.alias_paths, results, strict=True):
                row[path[0]] = v
            return row
        for path, v in zip(self.group_paths, group_values, strict=True):
            set_path(row, path, v)
        for path, v in zip(self.alias_paths, results, strict=True):
            set_path(row, path, v)
        return row
