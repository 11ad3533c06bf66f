"""`compile_chain`: validate a pipeline's `transforms` list and run it over batches of items.

Everything here is a pure function of (state, items, now_ms): the pipeline workflow runs it in
activities and keeps `ChainState` as its checkpoint, so a retry or a replay gives the same result.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .model import TRANSFORMS, ChainOutput, ChainState, Item, OutItem, Record, RunCtx, Step

MAX_STEPS = 50


def compile_chain(transforms: list[dict]) -> TransformChain:
    """Validate and compile every step; raises ConfigError located in the pipeline body."""
    if transforms is None:
        transforms = []
    if not isinstance(transforms, list):
        raise ConfigError(("transforms",), "must be a list of transforms")
    if len(transforms) > MAX_STEPS:
        raise ConfigError(("transforms",), f"at most {MAX_STEPS} transforms")
    steps: list[Step] = []
    upstream: str | None = None  # nearest window/batch step before the current one
    for i, spec in enumerate(transforms):
        loc = ("transforms", i)
        if not isinstance(spec, dict):
            raise ConfigError(loc, "a transform must be an object with 'type' and 'config'")
        extra = sorted(set(spec) - {"type", "config"})
        if extra:
            raise ConfigError((*loc, extra[0]), "unknown setting")
        kind = spec.get("type")
        step_type = TRANSFORMS.find(kind) if isinstance(kind, str) else None
        if step_type is None:
            raise ConfigError(
                (*loc, "type"),
                f"unknown transform type {kind!r}; expected one of: {', '.join(TRANSFORMS)}",
            )
        if "config" not in spec:
            raise ConfigError((*loc, "config"), "Field required")
        step = step_type(i, spec["config"], upstream=upstream)
        if step.groups_records:
            upstream = kind
        steps.append(step)
    return TransformChain(steps)


def _out(rec: Record) -> OutItem:
    value, src = rec
    if type(src) is Item:
        return OutItem(value, src.offset, src.offset, src.ingest_ms)
    if src.value is value:  # type: ignore[union-attr]  # rows built by stateful steps
        return src  # type: ignore[return-value]
    return OutItem(value, src.first_offset, src.last_offset, src.ingest_ms)  # type: ignore[union-attr]


class TransformChain:
    """A compiled `transforms` list. Thread-safe and reusable: all mutable state is in ChainState."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self._stateful = [s for s in steps if s.stateful]

    def initial_state(self) -> ChainState:
        return ChainState(steps={s.index: s.initial() for s in self._stateful})

    def _load(self, state: ChainState) -> dict[int, Any]:
        sts = {}
        for s in self._stateful:
            raw = state.steps[s.index] if s.index in state.steps else s.initial()
            try:
                sts[s.index] = s.load(raw)
            except (KeyError, TypeError, IndexError, AttributeError) as exc:
                raise ValueError(
                    f"the state of step {s.index} does not belong to this transform chain "
                    "(start from initial_state() after changing the transforms)"
                ) from exc
        return sts

    def _finish(
        self, recs: list[Record], ctx: RunCtx, sts: dict[int, Any], clock: int
    ) -> ChainOutput:
        return ChainOutput(
            outputs=[_out(r) for r in recs],
            filtered=ctx.filtered,
            late=ctx.late,
            failed=ctx.failed,
            state=ChainState(
                clock_ms=clock, steps={s.index: s.dump(sts[s.index]) for s in self._stateful}
            ),
        )

    def process(self, state: ChainState, items: list[Item], now_ms: int) -> ChainOutput:
        """Run `items` (the next ones of the log, in offset order) through every step.

        Batches whose timeout passed at now_ms are emitted (before the new records join).
        Windows close by their watermark (the max record time seen), not by now_ms: while the
        workflow drains a backlog, items ingested before now_ms may not have been read yet.
        With no items (an idle call: the log is drained) this is advance(state, now_ms)."""
        if not items:
            return self.advance(state, now_ms)
        max_ingest = max(it.ingest_ms for it in items)
        return self._run(state, [(it.value, it) for it in items], now_ms, False, max_ingest)

    def advance(self, state: ChainState, now_ms: int) -> ChainOutput:
        """Fire due timers at now_ms: close windows whose close time passed, emit timed-out
        batches (outputs flow through the downstream steps). Call it when
        now_ms >= next_deadline_ms(state) and the items ingested before now_ms have been
        processed (the log is drained); items of a window it closed arrive late."""
        return self._run(state, [], now_ms, True, None)

    def _run(
        self,
        state: ChainState,
        recs: list[Record],
        now_ms: int,
        fire: bool,
        max_ingest: int | None,
    ) -> ChainOutput:
        clock = max(now_ms, state.clock_ms)
        ctx = RunCtx(clock, max_ingest)
        sts = self._load(state)
        for step in self.steps:
            if step.stateful:
                st = sts[step.index]
                recs = step.tick(st, recs, ctx)
                if fire:
                    recs += step.advance(st, ctx)
            elif recs:
                recs = step.process(None, recs, ctx)
        return self._finish(recs, ctx, sts, clock)

    def next_deadline_ms(self, state: ChainState) -> int | None:
        """The earliest time advance() has work to do; None when nothing is pending."""
        due = [
            d
            for s in self._stateful
            if s.index in state.steps and (d := s.deadline(state.steps[s.index])) is not None
        ]
        return min(due) if due else None

    def flush(self, state: ChainState) -> ChainOutput:
        """Emit everything pending (open windows, partial batches), e.g. when the pipeline stops."""
        ctx = RunCtx(state.clock_ms)
        sts = self._load(state)
        recs: list[Record] = []
        for step in self.steps:
            if step.stateful:
                recs = step.tick(sts[step.index], recs, ctx) if recs else []
                recs += step.flush(sts[step.index], ctx)
            elif recs:
                recs = step.process(None, recs, ctx)
        return self._finish(recs, ctx, sts, state.clock_ms)
