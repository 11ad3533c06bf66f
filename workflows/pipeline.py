"""PipelineWorkflow: one long-running workflow per running pipeline (id `pipeline-<id>`).

Its state — committed offset, transform-chain state, counters — IS the pipeline's checkpoint.
Each loop iteration runs one `process_batch` activity (fetch after the committed offset,
transform, save the new state, deliver) whose RetryPolicy is the destination's `retryPolicy`;
when retries run out, or a failure cannot be retried (a destination refusing the batch, a state
the database refuses), the same batch is dead-lettered and the pipeline moves on. Every retry
policy is bounded: when even dead-lettering fails, the pipeline ends `failed` with the error. Items never enter history: only the
small state and counters do. Continue-as-new every `continue_every` batches carries the state.

Controls: signals `pause`, `resume`, `stop`, `config_updated`; updates `create_checkpoint`
(returns the id), `restore` (reprocess from a checkpoint), `replay_dead_letters` (returns
counts). Queries: `status`, `metrics`, `details`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.pipelines import PipelineActivities
    from deeployd.pipelines import contract
    from deeployd.pipelines.runtime import METRICS_WINDOW_S, PRUNE_EVERY, summarize
    from deeployd.temporal import STATUS

HEARTBEAT = timedelta(seconds=5)
BATCH_TIMEOUT = timedelta(minutes=10)
# Dead-lettering and bookkeeping only touch our own database: ride out an outage of a few
# minutes (~5), then give up: the pipeline ends `failed` with the error, never a silent loop.
INFRA_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=30,
)
# A config that no longer compiles, a deleted pipeline, a saved state that cannot be read:
# retrying cannot help.
FATAL = ("ConfigError", "PipelineDeleted", "BadState")
# The batch's new state could not be saved: its items are parked, the previous state is kept.
STATE_ERROR = "StateError"


class PipelineFailed(Exception):
    """Raised inside the workflow to end the run after recording status `failed`."""


def _error_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _failure(err: ActivityError) -> tuple[str, int | None, dict[str, Any] | None]:
    """The last attempt's error message, the batch's last offset and the outputs it delivered
    (`{"k", "digest"}`), from its details."""
    cause = err.cause
    message = str(cause or err)
    last: int | None = None
    delivered: dict[str, Any] | None = None
    if isinstance(cause, ApplicationError):
        message = cause.message
        if cause.details and isinstance(cause.details[0], dict):
            value = cause.details[0].get("lastOffset")
            last = int(value) if value is not None else None
            prefix = cause.details[0].get("delivered")
            delivered = prefix if isinstance(prefix, dict) else None
    return message, last, delivered


@workflow.defn(name=contract.PIPELINE_WORKFLOW)
class PipelineWorkflow:
    def __init__(self) -> None:
        self._input: contract.PipelineWorkflowInput | None = None
        self._state = contract.PipelineState()
        self._paused = False
        self._stopping = False
        self._generation = 0  # bumped by restore: an in-flight batch's result is then discarded
        self._slots: list[contract.LatencySlot] = []
        self._status = "running"
        self._last_error: str | None = None
        self._last_error_ms: int | None = None
        self._last_offset = 0
        self._last_metrics_ms = 0
        self._holds = 0  # checkpoints being saved: the next batch waits (it may drop old states)

    # --- run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: contract.PipelineWorkflowInput) -> contract.PipelineState:
        self._input = inp
        self._state = inp.state
        self._paused = inp.paused
        self._slots = list(inp.slots)
        self._last_error, self._last_error_ms = inp.last_error, inp.last_error_ms
        self._last_offset = inp.last_offset
        if inp.started_ms is None:
            inp.started_ms = self._now_ms()
        self._set_status("paused" if self._paused else "running")
        batches = 0
        try:
            while not self._stopping:
                if self._paused:
                    await workflow.wait_condition(lambda: not self._paused or self._stopping)
                    continue
                if batches >= inp.continue_every or workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(self._carry())
                await workflow.wait_condition(lambda: self._holds == 0)
                batches += 1
                await self._batch("deliver", prune=batches % PRUNE_EVERY == 0)
            await self._batch("flush")
        except PipelineFailed as failed:
            return await self._fail(str(failed))
        await workflow.execute_activity_method(
            PipelineActivities.save_state,
            contract.SaveStateInput(
                org_id=inp.org_id, pipeline_id=inp.pipeline_id, state=self._state
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=INFRA_RETRY,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._set_status("stopped")
        # Recorded here too (not only by the API), so a flush that outlasts the API's wait
        # still ends as `stopped`.
        await workflow.execute_activity_method(
            PipelineActivities.set_status,
            contract.SetStatusInput(
                org_id=inp.org_id, pipeline_id=inp.pipeline_id, status="stopped"
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=INFRA_RETRY,
        )
        return self._state

    def _carry(self) -> contract.PipelineWorkflowInput:
        assert self._input is not None
        return self._input.model_copy(
            update={
                "state": self._state,
                "paused": self._paused,
                "slots": self._recent_slots(),
                "last_error": self._last_error,
                "last_error_ms": self._last_error_ms,
                "last_offset": self._last_offset,
            }
        )

    async def _fail(self, error: str) -> contract.PipelineState:
        """Record `failed` (a config that no longer works) and fail the run, so it shows as
        Failed in the Temporal UI; `start` after a fix resumes from the saved state."""
        inp = self._input
        assert inp is not None
        self._set_status("failed")
        await workflow.execute_activity_method(
            PipelineActivities.set_status,
            contract.SetStatusInput(
                org_id=inp.org_id,
                pipeline_id=inp.pipeline_id,
                status="failed",
                error=error,
                state=self._state,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=INFRA_RETRY,
        )
        raise ApplicationError(f"pipeline failed: {error}", non_retryable=True)

    async def _batch(self, mode: str, *, prune: bool = False) -> None:
        inp = self._input
        assert inp is not None
        generation = self._generation
        request = contract.ProcessBatchInput(
            org_id=inp.org_id,
            pipeline_id=inp.pipeline_id,
            state=self._state,
            mode=mode,  # type: ignore[arg-type]
            batch_size=inp.batch_size,
            max_wait_ms=inp.max_wait_ms,
            metrics=self._metrics_to_publish(),
            prune=prune,
        )
        policy = RetryPolicy(
            initial_interval=timedelta(milliseconds=inp.retry.backoff_ms),
            backoff_coefficient=2.0,
            maximum_attempts=inp.retry.max_retries + 1,
            non_retryable_error_types=list(FATAL),
        )
        try:
            result = await workflow.execute_activity_method(
                PipelineActivities.process_batch,
                request,
                start_to_close_timeout=BATCH_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=policy,
            )
        except ActivityError as err:
            if generation != self._generation:
                return
            message, last, delivered = _failure(err)
            kind = _error_type(err)
            if kind in FATAL:
                raise PipelineFailed(message) from None
            self._last_error, self._last_error_ms = message, self._now_ms()
            try:
                result = await workflow.execute_activity_method(
                    PipelineActivities.process_batch,
                    request.model_copy(
                        update={
                            "mode": "dead_letter",
                            "through_offset": last,
                            "error": message,
                            "metrics": None,
                            "failed_stage": "state" if kind == STATE_ERROR else "delivery",
                            "delivered_prefix": delivered,
                        }
                    ),
                    start_to_close_timeout=BATCH_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=INFRA_RETRY,
                )
            except ActivityError as dead_err:
                raise PipelineFailed(_failure(dead_err)[0]) from None
        if generation != self._generation:
            return  # a restore replaced the state while this batch ran
        self._apply(result)

    def _apply(self, result: contract.ProcessBatchResult) -> None:
        inp = self._input
        assert inp is not None
        self._state = result.state
        self._last_offset = result.last_offset
        inp.retry = result.retry
        inp.batch_size = result.batch_size
        inp.max_wait_ms = result.max_wait_ms
        if result.items or result.latency_count:
            second = self._now_ms() // 1000
            if not self._slots or self._slots[-1].second != second:
                self._slots.append(contract.LatencySlot(second=second))
                self._slots = self._recent_slots()
            slot = self._slots[-1]
            slot.processed += result.items
            slot.count += result.latency_count
            slot.total_ms += result.latency_total_ms
            for key, value in result.latency_buckets.items():
                slot.buckets[key] = slot.buckets.get(key, 0) + value

    def _recent_slots(self) -> list[contract.LatencySlot]:
        now_s = self._now_ms() // 1000
        return [s for s in self._slots if s.second > now_s - METRICS_WINDOW_S]

    def _now_ms(self) -> int:
        return int(workflow.now().timestamp() * 1000)

    def _set_status(self, status: str) -> None:
        self._status = status
        workflow.upsert_search_attributes([STATUS.value_set(status)])

    def _metrics_to_publish(self) -> dict[str, Any] | None:
        """Metrics ride along with the next batch at most once a second (the activity
        publishes them on `pipeline:<id>`), so the live stream needs no extra activity."""
        now = self._now_ms()
        if now - self._last_metrics_ms < 1000:
            return None
        self._last_metrics_ms = now
        return self.metrics()

    # --- signals ------------------------------------------------------------------------

    @workflow.signal(name=contract.PAUSE)
    def pause(self) -> None:
        if not self._stopping:
            self._paused = True
            self._set_status("paused")

    @workflow.signal(name=contract.RESUME)
    def resume(self) -> None:
        if not self._stopping:
            self._paused = False
            self._set_status("running")

    @workflow.signal(name=contract.STOP)
    def stop(self) -> None:
        self._stopping = True
        self._paused = False
        self._set_status("stopping")

    @workflow.signal(name=contract.CONFIG_UPDATED)
    def config_updated(self) -> None:
        """The activity reads the config (by version) from the database; nothing to carry."""

    # --- updates ------------------------------------------------------------------------

    @workflow.update(name=contract.CREATE_CHECKPOINT)
    async def create_checkpoint(self) -> dict[str, Any]:
        inp = self._input
        assert inp is not None
        state = self._state
        self._holds += 1
        try:
            checkpoint_id = await workflow.execute_activity_method(
                PipelineActivities.save_checkpoint,
                contract.SaveCheckpointInput(
                    org_id=inp.org_id, pipeline_id=inp.pipeline_id, state=state
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=INFRA_RETRY,
            )
        finally:
            self._holds -= 1
        return {"id": checkpoint_id, "offset": state.committed_offset}

    @workflow.update(name=contract.RESTORE)
    async def restore(self, state: contract.PipelineState) -> dict[str, Any]:
        """Reprocess from a checkpoint: its offset and chain state, keeping the counters
        cumulative (they count work done, which includes the reprocessing)."""
        counters = self._state.counters
        self._state = state.model_copy(update={"counters": counters})
        self._generation += 1
        return {"offset": state.committed_offset}

    @workflow.update(name=contract.REPLAY_DEAD_LETTERS)
    async def replay_dead_letters(self) -> contract.ReplayResult:
        inp = self._input
        assert inp is not None
        return await workflow.execute_activity_method(
            PipelineActivities.replay_dead_letters,
            contract.ReplayInput(org_id=inp.org_id, pipeline_id=inp.pipeline_id),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )

    # --- queries ------------------------------------------------------------------------

    @workflow.query(name=contract.STATUS_QUERY)
    def status(self) -> str:
        return self._status

    @workflow.query(name=contract.METRICS_QUERY)
    def metrics(self) -> dict[str, Any]:
        inp = self._input
        assert inp is not None
        now = self._now_ms()
        counters = self._state.counters
        pending = max(0, self._last_offset - self._state.committed_offset)
        summary = summarize(self._slots, now // 1000, (now - (inp.started_ms or now)) / 1000)
        return contract.metrics_view(
            counters,
            committed_offset=self._state.committed_offset,
            status=self._status,
            last_error=self._last_error,
            last_error_at=self._last_error_ms,
            live={**summary, "pending": pending},
        )
