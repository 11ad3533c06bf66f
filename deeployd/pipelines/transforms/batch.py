"""`batch`: group records into `{"items": [...values], "count": n}`.

A batch is emitted as soon as it holds `size` records, or `timeout` ms after its FIRST record
arrived at this step (arrival = the `now_ms` of the call that brought it; the workflow's timer
from `next_deadline_ms` fires it), or on flush. Pending records live in the state: at most
`size - 1` of them between calls.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .configs import StrictConfig, validate_config
from .model import TRANSFORMS, OutItem, Record, RunCtx, Step, span

MAX_BATCH_SIZE = 10_000
MAX_TIMEOUT_MS = 24 * 3600 * 1000


class BatchConfig(StrictConfig):
    size: int = Field(default=100, ge=1, le=MAX_BATCH_SIZE)
    timeout: int = Field(default=5000, ge=1, le=MAX_TIMEOUT_MS)


@TRANSFORMS.register("batch")
class BatchStep(Step):
    stateful = True
    groups_records = True

    def __init__(self, index: int, raw: Any, upstream: str | None = None) -> None:
        self.index = index
        self.config = validate_config(BatchConfig, raw, ("transforms", index, "config"))
        self.size = self.config.size
        self.timeout = self.config.timeout

    # state: {"items": [[value, first_offset, last_offset, ingest_ms], ...], "since": ms | None}
    def initial(self) -> Any:
        return {"items": [], "since": None}

    def load(self, raw: Any) -> Any:
        return {"items": list(raw["items"]), "since": raw["since"]}

    def deadline(self, st: Any) -> int | None:
        return st["since"] + self.timeout if st["items"] else None

    def _emit(self, st: dict) -> Record:
        pending = st["items"]
        value = {"items": [p[0] for p in pending], "count": len(pending)}
        row = OutItem(
            value,
            min(p[1] for p in pending),
            max(p[2] for p in pending),
            min(p[3] for p in pending),
        )
        st["items"] = []
        st["since"] = None
        return value, row

    def tick(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        # Timed-out records go first, so a batch never mixes old and new arrivals past its timeout.
        out = self.advance(st, ctx)
        return out + self.process(st, recs, ctx) if recs else out

    def process(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        out: list[Record] = []
        pending = st["items"]
        for value, src in recs:
            if not pending:
                st["since"] = ctx.now_ms
            pending.append([value, *span(src)])
            if len(pending) >= self.size:
                out.append(self._emit(st))
                pending = st["items"]
        return out

    def advance(self, st: Any, ctx: RunCtx) -> list[Record]:
        if st["items"] and ctx.now_ms >= st["since"] + self.timeout:
            return [self._emit(st)]
        return []

    def flush(self, st: Any, ctx: RunCtx) -> list[Record]:
        return [self._emit(st)] if st["items"] else []
