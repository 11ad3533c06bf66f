"""`aggregate`: group records and compute sum/avg/count/min/max.

Three modes, chosen at compile time from the steps before it:
- running (no window/batch upstream): totals per group live in the state and grow forever;
  each call emits the UPDATED group rows (group keys + aggregates, cumulative) — one row per
  group touched in that call, made for a database upsert keyed by the group keys.
  At most `maxGroups` groups (default 10,000): an item opening one more group fails.
- per batch (a `batch` step upstream): each incoming `{"items": [...]}` record is aggregated on
  its own; one row per group per batch; nothing is kept.
- per window (a `window` step upstream): the window rows arriving together are re-aggregated
  per (windowStart, windowEnd, groupBy...), e.g. to total per-agent window sums; nothing is kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .aggs import Aggregations, AggregationsMixin
from .configs import validate_config
from .errors import StepError
from .model import TRANSFORMS, OutItem, Record, RunCtx, Step, span

DEFAULT_MAX_GROUPS = 10_000
MAX_GROUPS_LIMIT = 100_000


class AggregateConfig(AggregationsMixin):
    maxGroups: int = Field(default=DEFAULT_MAX_GROUPS, ge=1, le=MAX_GROUPS_LIMIT)


class _Span:
    """Offsets/ingest time of the records contributing to one emitted row."""

    __slots__ = ("first", "ingest", "last")

    def __init__(self, first: int, last: int, ingest: int) -> None:
        self.first, self.last, self.ingest = first, last, ingest

    def add(self, first: int, last: int, ingest: int) -> None:
        if first < self.first:
            self.first = first
        if last > self.last:
            self.last = last
        if ingest < self.ingest:
            self.ingest = ingest


@TRANSFORMS.register("aggregate")
class AggregateStep(Step):
    def __init__(self, index: int, raw: Any, upstream: str | None = None) -> None:
        self.index = index
        loc = ("transforms", index, "config")
        self.config = cfg = validate_config(AggregateConfig, raw, loc)
        self.mode = {"window": "window", "batch": "batch"}.get(upstream or "", "running")
        reserved = ("windowStart", "windowEnd") if self.mode == "window" else ()
        self.aggs = Aggregations(cfg.groupBy, cfg.aggregations, loc, reserved)
        self.max_groups = cfg.maxGroups
        self.stateful = self.mode == "running"

    # state (running mode): {"groups": {group_key: [group_values, accumulators]}, "keys": "json"}
    # ("keys" marks JSON group keys; states saved before it use legacy keys, re-keyed on load)
    def initial(self) -> Any:
        return {"groups": {}, "keys": "json"}

    def load(self, raw: Any) -> Any:
        groups = raw["groups"]
        if raw.get("keys") != "json":
            key = self.aggs.group_key
            return {"groups": {key(e[0]): e for e in groups.values()}, "keys": "json"}
        return {"groups": dict(groups), "keys": "json"}  # entries are copied when first touched

    def process(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        if self.mode == "running":
            return self._running(st, recs, ctx)
        if self.mode == "batch":
            out: list[Record] = []
            for value, src in recs:
                members = value.get("items") if type(value) is dict else None
                if type(members) is not list:
                    members = [value]
                out += self._one_shot([(m, src) for m in members], ctx, None)
            return out
        return self._one_shot(recs, ctx, ("windowStart", "windowEnd"))

    def _running(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        aggs = self.aggs
        groups: dict = st["groups"]
        touched: dict[str, _Span] = {}
        for value, src in recs:
            try:
                gvals = aggs.group_values(value)
                key = aggs.group_key(gvals)
                vals = aggs.extract(value)
                first, last, ingest = span(src)
                sp = touched.get(key)
                if sp is None:
                    entry = groups.get(key)
                    if entry is None:
                        if len(groups) >= self.max_groups:
                            raise StepError(
                                f"aggregate: too many groups (maxGroups={self.max_groups})"
                            )
                        entry = [gvals, aggs.new()]
                    else:
                        entry = [entry[0], aggs.copy(entry[1])]  # never mutate the input state
                    aggs.check_compatible(entry[1], vals)
                    groups[key] = entry
                    touched[key] = _Span(first, last, ingest)
                else:
                    entry = groups[key]
                    aggs.check_compatible(entry[1], vals)
                    sp.add(first, last, ingest)
                aggs.add(entry[1], vals)
            except StepError as exc:
                ctx.fail(value, src, str(exc))
            except Exception as exc:  # an engine bug must fail the item, not stall the pipeline
                ctx.fail(value, src, f"aggregate: {type(exc).__name__}: {exc}")
        out: list[Record] = []
        for key, sp in touched.items():
            gvals, accs = groups[key]
            row = aggs.row(gvals, accs)
            out.append((row, OutItem(row, sp.first, sp.last, sp.ingest)))
        return out

    def _one_shot(
        self, recs: list[Record], ctx: RunCtx, head_fields: tuple[str, ...] | None
    ) -> list[Record]:
        aggs = self.aggs
        groups: dict[str, list] = {}  # key -> [head, group values, accs, span]
        for value, src in recs:
            try:
                head = {f: value.get(f) for f in head_fields} if head_fields else None
                gvals = aggs.group_values(value)
                key = aggs.group_key([head, gvals]) if head else aggs.group_key(gvals)
                vals = aggs.extract(value)
                first, last, ingest = span(src)
                entry = groups.get(key)
                if entry is None:
                    entry = groups[key] = [head, gvals, aggs.new(), _Span(first, last, ingest)]
                else:
                    entry[3].add(first, last, ingest)
                aggs.check_compatible(entry[2], vals)
                aggs.add(entry[2], vals)
            except Exception as exc:  # StepError: bad data; anything else: fail the item too
                reason = str(exc) if isinstance(exc, StepError) else f"aggregate: {exc!r}"
                ctx.fail(value if type(value) is dict else {"value": value}, src, reason)
        out: list[Record] = []
        for head, gvals, accs, sp in groups.values():
            row = aggs.row(gvals, accs, head)
            out.append((row, OutItem(row, sp.first, sp.last, sp.ingest)))
        return out
