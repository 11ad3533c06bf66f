"""The engine's data types and the internal record/step plumbing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from deeployd.registry import Registry

from .expressions import EvalEnv


@dataclass(frozen=True, slots=True)
class Item:
    """One item read from the pipeline's log."""

    offset: int
    value: dict
    ingest_ms: int  # ingest time, ms since epoch


@dataclass(frozen=True, slots=True)
class OutItem:
    """One item leaving the chain; offsets span the items it was computed from."""

    value: dict
    first_offset: int
    last_offset: int
    ingest_ms: int  # earliest ingest time of the contributing items


class ChainState(BaseModel):
    """The checkpoint of a chain: per-step state keyed by step index (stateless steps: absent).

    Plain JSON values only, so `ChainState.model_validate_json(s.model_dump_json())` is exact.
    """

    version: int = 1
    clock_ms: int = 0  # the latest now_ms seen: flush() evaluates `now()` and timers at this time
    steps: dict[int, Any] = Field(default_factory=dict)


@dataclass
class ChainOutput:
    outputs: list[OutItem] = field(default_factory=list)
    filtered: int = 0  # records dropped by filter steps
    late: list[Item] = field(default_factory=list)  # event/processing time behind a closed window
    failed: list[tuple[Item, str]] = field(default_factory=list)  # -> dead letters, with reason
    state: ChainState = field(default_factory=ChainState)


# A record flowing between steps: (value, source). The source is the `Item` the record was derived
# from 1:1 (filter/map keep it, so a failure can dead-letter the original item), or an `OutItem`
# carrying the offset span of an aggregate/window/batch row (its `value` is not used).
Record = tuple[dict, Item | OutItem]


def span(src: Item | OutItem) -> tuple[int, int, int]:
    """(first_offset, last_offset, ingest_ms) of a record source."""
    if type(src) is Item:
        return src.offset, src.offset, src.ingest_ms
    return src.first_offset, src.last_offset, src.ingest_ms  # type: ignore[union-attr]


def as_item(value: dict, src: Item | OutItem) -> Item:
    """The `Item` to report for a failed/late record (the original item when there is one)."""
    if type(src) is Item:
        return src  # type: ignore[return-value]
    return Item(offset=src.first_offset, value=value, ingest_ms=src.ingest_ms)  # type: ignore[union-attr]


class RunCtx:
    """Per-call accumulator shared by the steps of one process/advance/flush call."""

    __slots__ = ("env", "failed", "filtered", "late", "max_ingest", "now_ms")

    def __init__(self, now_ms: int, max_ingest: int | None = None) -> None:
        self.now_ms = now_ms
        # the max ingest_ms of the items read in this call: every item ingested before it has
        # been read (the log is read in offset order), the processing-time watermark
        self.max_ingest = max_ingest
        self.env = EvalEnv(now_ms)
        self.filtered = 0
        self.late: list[Item] = []
        self.failed: list[tuple[Item, str]] = []

    def fail(self, value: dict, src: Item | OutItem, reason: str) -> None:
        self.failed.append((as_item(value, src), reason))


class Step:
    """One compiled transform. Stateless steps only implement `process`."""

    stateful = False
    # Window and batch steps group records: an aggregate after one aggregates per group.
    groups_records = False
    index: int = 0

    def __init__(self, index: int, raw: Any, upstream: str | None = None) -> None:
        """`raw` is the transform's `config`; `upstream` the type of the nearest step before
        this one that groups records (window, batch), if any. Raises ConfigError."""
        self.index = index

    def initial(self) -> Any:
        return None

    def load(self, raw: Any) -> Any:
        """A private, mutable working copy of this step's state (the input state is never mutated)."""
        return raw

    def dump(self, st: Any) -> Any:
        return st

    def process(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        raise NotImplementedError

    def advance(self, st: Any, ctx: RunCtx) -> list[Record]:
        """Fire what is due at ctx.now_ms."""
        return []

    def tick(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        """Stateful steps: take the incoming records, then fire what is due."""
        out = self.process(st, recs, ctx) if recs else []
        return out + self.advance(st, ctx)

    def flush(self, st: Any, ctx: RunCtx) -> list[Record]:
        return []

    def deadline(self, st: Any) -> int | None:
        return None


# Every transform type, by the name used in a pipeline body's `transforms[i].type`. A transform
# module registers its Step class with `@TRANSFORMS.register("name")`; the package imports them.
TRANSFORMS: Registry[type[Step]] = Registry("transform")
