"""Pipeline activities: one activity takes a batch from the log, transforms it and delivers it.

Why one activity for fetch + transform + deliver: items and outputs never pass through workflow
history (the activity's input and result are the small `PipelineState` plus counters), a batch
costs one activity round trip, and a retry simply re-runs the whole batch from the same committed
offset and chain state — deterministic transforms give the same outputs, and idempotent
destinations (upsert, `webhook-id`) absorb the redelivery. The new state and the batch's dead
letters are saved BEFORE delivery: a state the database refuses (a non-retryable `StateError`)
then delivers nothing, and a delivered batch is never redelivered because its bookkeeping failed.
Items a destination refuses one by one (`Delivery.rejected`) become dead letters on their own.
The activity's Temporal RetryPolicy is the destination's `retryPolicy`; when it is exhausted (or
the failure cannot be retried) the workflow calls the same activity in `dead_letter` mode, which
stores the batch's outputs (or, for a `StateError`, its input items) as dead letters and moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating, previous_details
from deeployd.ids import new_id
from deeployd.pipelines.contract import (
    DELIVERY_FAILED_EVENT,
    METRICS_EVENT,
    STATUS_EVENT,
    Counters,
    PipelineState,
    ProcessBatchInput,
    ProcessBatchResult,
    ReplayInput,
    ReplayResult,
    SaveCheckpointInput,
    SaveStateInput,
    SetStatusInput,
    batch_settings,
    stream_key,
)
from deeployd.pipelines.destinations import (
    Delivery,
    DeliveryContext,
    DeliveryError,
    get_destination,
)
from deeployd.pipelines.ingest import ingest_items
from deeployd.pipelines.notifier import ItemNotifier
from deeployd.pipelines.runtime import (
    INLINE_STATE_BYTES,
    latency_bucket,
    load_chain_state,
    store_chain_state,
)
from deeployd.pipelines.transforms import (
    ChainOutput,
    ChainState,
    Item,
    OutItem,
    TransformChain,
    compile_chain,
)
from deeployd.secretstore import MissingSecretError, SecretStore
from deeployd.services import Services

_CHAIN_CACHE = 256
_FETCH = (
    'SELECT "offset", value::text, (extract(epoch FROM ingested_at) * 1000)::bigint '
    'FROM pipeline_items WHERE pipeline_id = %s AND "offset" > %s AND "offset" <= %s '
    'ORDER BY "offset" LIMIT %s'
)
_MAX_OFFSET = 2**62


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class _PipelineRow:
    __slots__ = ("destination", "last_offset", "options", "transforms", "version")

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.version, self.transforms, self.destination, self.options, self.last_offset = row


def _output_line(item: OutItem) -> bytes:
    return f"{item.first_offset}:{item.last_offset}:{_dumps(item.value)}\n".encode()


# How often the delivered prefix is heartbeated. A worker killed mid-batch redelivers what it
# delivered since the last heartbeat that reached Temporal (worker.HEARTBEAT_THROTTLE): at most
# one batch, typically this interval's worth of deliveries.
HEARTBEAT_EVERY_S = 0.25


class _DeliveredPrefix:
    """What the batch's heartbeats carry: how much of its output was delivered, as the count
    `k` of the longest delivered prefix and a digest of those k outputs. A retry that
    recomputes the same prefix (same digest) skips it, so receivers see fewer duplicates; a
    different prefix (e.g. a window closed in between) skips nothing — never an undelivered
    output. The outputs of that prefix the destination refused one by one travel along
    (`rejected`: [position, reason]), so a retry that skips them still dead-letters them."""

    def __init__(self) -> None:
        self.details: dict[str, Any] = {"k": 0, "digest": ""}
        self.previous: dict[str, Any] = {"k": 0, "digest": ""}
        earlier = previous_details()
        if earlier and isinstance(earlier[0], dict):
            self.previous = dict(earlier[0])

    def already_delivered(self, outputs: list[OutItem]) -> int:
        """How many leading outputs an earlier attempt of this batch delivered."""
        return _delivered_prefix(outputs, self.previous)

    def tracker(
        self, outputs: list[OutItem], skip: int, refused: list[tuple[OutItem, str]]
    ) -> Callable[[OutItem], None]:
        """The `progress` callback: extends the delivered prefix as items are confirmed (in
        any order) and publishes it in the next heartbeat. `refused`: the live list of outputs
        refused so far (with those carried over from an earlier attempt)."""
        index = {id(item): i for i, item in enumerate(outputs)}
        done: set[int] = set(range(skip))
        digest = hashlib.sha256()
        for item in outputs[:skip]:
            digest.update(_output_line(item))
        state = {"k": skip}

        def progress(item: OutItem) -> None:
            position = index.get(id(item))
            if position is None:
                return
            done.add(position)
            k = state["k"]
            while k in done:
                digest.update(_output_line(outputs[k]))
                k += 1
            state["k"] = k
            self.details = {
                "k": k,
                "digest": digest.hexdigest(),
                "rejected": _positions(index, refused, k),
            }

        self.details = {
            "k": skip,
            "digest": digest.hexdigest(),
            "rejected": _positions(index, refused, skip),
        }
        return progress


# (value, first offset, last offset, ingest ms, reason)
DeadEntry = tuple[dict[str, Any], int, int, int, str]


def _positions(
    index: dict[int, int], refused: list[tuple[OutItem, str]], k: int
) -> list[list[Any]]:
    """[position, reason] of the refused outputs inside the delivered prefix."""
    out = []
    for item, why in refused:
        position = index.get(id(item))
        if position is not None and position < k:
            out.append([position, why[:500]])
    return out


def _refused_in_prefix(
    outputs: list[OutItem], prefix: dict[str, Any] | None, k: int
) -> list[tuple[OutItem, str]]:
    """The outputs of a delivered prefix that the destination had refused, with the reason."""
    out = []
    for entry in (prefix or {}).get("rejected") or []:
        position, why = int(entry[0]), str(entry[1])
        if 0 <= position < k:
            out.append((outputs[position], why))
    return out


def _delivered_prefix(outputs: list[OutItem], prefix: dict[str, Any] | None) -> int:
    """How many leading outputs the failed attempts delivered (their digest must match)."""
    if not prefix:
        return 0
    k = int(prefix.get("k", 0))
    if k <= 0 or k > len(outputs):
        return 0
    digest = hashlib.sha256()
    for item in outputs[:k]:
        digest.update(_output_line(item))
    return k if digest.hexdigest() == prefix.get("digest") else 0


def _dead_letter_rows(
    org_id: str,
    pipeline_id: str,
    stage: str,
    entries: list[DeadEntry],
) -> list[tuple[Any, ...]]:
    rows = []
    for value, first, last, ingest_ms, error in entries:
        text = _dumps(value)
        digest = hashlib.sha256(f"{stage}|{first}|{last}|{text}".encode()).hexdigest()[:32]
        rows.append((org_id, pipeline_id, stage, first, last, text, ingest_ms, error, digest))
    return rows


class PipelineActivities:
    """Built once in the worker: the database, the event publisher, the settings, an HTTP
    client, the LISTEN notifier, and a cache of compiled transform chains keyed by (pipeline,
    config version)."""

    def __init__(self, services: Services) -> None:
        self._db = services.db
        self._pool = services.db.pool
        self._publisher = services.publisher
        self._settings = services.settings
        # Read when a destination's secrets are resolved: a worker without a secret key still
        # runs every pipeline that names none.
        self._secret_box = lambda: services.secret_box
        self._notifier = ItemNotifier(services.db.url)
        self._chains: OrderedDict[tuple[str, int], TransformChain] = OrderedDict()
        self._http: httpx.AsyncClient | None = None

    # --- helpers ------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0, follow_redirects=False)
        return self._http

    def _chain(
        self, pipeline_id: str, version: int, transforms: list[dict[str, Any]]
    ) -> TransformChain:
        key = (pipeline_id, version)
        chain = self._chains.get(key)
        if chain is None:
            chain = compile_chain(transforms)
            self._chains[key] = chain
            while len(self._chains) > _CHAIN_CACHE:
                self._chains.popitem(last=False)
        self._chains.move_to_end(key)
        return chain

    async def _load(self, org_id: str, pipeline_id: str) -> _PipelineRow:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT p.config_version, p.transforms, p.destination, p.options, o.last_offset "
                "FROM pipelines p JOIN pipeline_offsets o ON o.pipeline_id = p.id "
                "WHERE p.id = %s AND p.org_id = %s",
                (pipeline_id, org_id),
            )
            row = await cursor.fetchone()
        if row is None:
            raise ApplicationError(
                "pipeline was deleted", type="PipelineDeleted", non_retryable=True
            )
        return _PipelineRow(row)

    async def _fetch(self, pipeline_id: str, after: int, through: int, limit: int) -> list[Item]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_FETCH, (pipeline_id, after, through, limit))
            rows = await cursor.fetchall()
        loads = json.loads
        return [Item(offset=r[0], value=loads(r[1]), ingest_ms=r[2]) for r in rows]

    async def _next_items(
        self, req: ProcessBatchInput, chain: TransformChain, cs: ChainState, version: int
    ) -> list[Item]:
        """The next batch; when the log is empty, wait (bounded) for a NOTIFY or a due timer."""
        pid = req.pipeline_id
        after = req.state.committed_offset
        through = req.through_offset if req.through_offset is not None else _MAX_OFFSET
        event = self._notifier.register(pid)
        try:
            items = await self._fetch(pid, after, through, req.batch_size)
            if items or req.mode != "deliver":
                return items
            wait_s = req.max_wait_ms / 1000
            deadline = chain.next_deadline_ms(cs)
            if deadline is not None:
                wait_s = min(wait_s, max(0.0, (deadline - _now_ms()) / 1000))
            if wait_s > 0:
                await self._notifier.wait_ready(1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), wait_s)
            items = await self._fetch(pid, after, through, req.batch_size)
            if items and await self._changed_while_waiting(req.org_id, pid, version):
                # Paused or reconfigured while we waited: the API writes the row before it
                # answers, and these items committed after that, so they must see the change.
                return []
            return items
        finally:
            self._notifier.unregister(pid, event)

    async def _changed_while_waiting(self, org_id: str, pipeline_id: str, version: int) -> bool:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT status, config_version FROM pipelines WHERE id = %s AND org_id = %s",
                (pipeline_id, org_id),
            )
            row = await cursor.fetchone()
        return row is None or row[0] == "paused" or row[1] != version

    async def _resolved(self, org_id: str, config: dict[str, Any]) -> dict[str, Any]:
        try:
            store = SecretStore(self._db, self._secret_box())
            return await store.resolve(org_id, config)  # type: ignore[no-any-return]
        except (MissingSecretError, RuntimeError) as exc:
            raise DeliveryError(str(exc), retryable=False) from None

    def _context(
        self,
        org_id: str,
        pipeline_id: str,
        config: dict[str, Any],
        progress: Callable[[OutItem], None] | None,
    ) -> DeliveryContext:
        return DeliveryContext(
            org_id=org_id,
            pipeline_id=pipeline_id,
            config=config,
            http=self.http,
            settings=self._settings,
            db=self._db,
            progress=progress,
        )

    def _publish(
        self, org_id: str, pipeline_id: str, event_type: str, data: dict[str, Any]
    ) -> None:
        """Fire-and-forget: live-stream events must never slow down or fail a batch."""
        with contextlib.suppress(Exception):
            future = self._publisher.publish_nowait(
                org_id, stream_key(pipeline_id), event_type, {"pipelineId": pipeline_id, **data}
            )
            future.add_done_callback(lambda f: f.exception())

    # --- activities ---------------------------------------------------------------------

    @activity.defn(name="pipeline_process_batch")
    async def process_batch(self, req: ProcessBatchInput) -> ProcessBatchResult:
        """Take the next batch after the committed offset, transform, deliver (or dead-letter)."""
        hb = _DeliveredPrefix()
        # Every HEARTBEAT_EVERY_S while deliveries advance the prefix, else once a second (an
        # idle wait for items costs few heartbeats); a killed worker is noticed within the
        # heartbeat timeout.
        async with heartbeating(HEARTBEAT_EVERY_S, lambda: hb.details, unchanged_every_s=1.0):
            return await self._process(req, hb)

    async def _input_chain_state(
        self, state: PipelineState, version: int, chain: TransformChain
    ) -> ChainState:
        """The chain state this batch starts from; a state that cannot be read ends the
        pipeline (retrying cannot repair it)."""
        if state.chain_version != version or (
            state.chain_state_ref is None and state.chain_state is None
        ):
            return chain.initial_state()  # first batch, or the config changed: start fresh
        try:
            if state.chain_state_ref is not None:
                raw = await self._load_chain_state(state.chain_state_ref)
            else:
                raw = state.chain_state or {}
            cs = ChainState.model_validate(load_chain_state(raw, state.chain_state_escaped))
            chain.next_deadline_ms(cs)  # reads the timed steps' states: a broken one fails here
            return cs
        except ApplicationError:
            raise
        except Exception as exc:
            raise ApplicationError(
                f"the saved transform state cannot be read: {exc}",
                type="BadState",
                non_retryable=True,
            ) from None

    async def _process(self, req: ProcessBatchInput, hb: _DeliveredPrefix) -> ProcessBatchResult:
        org_id, pid = req.org_id, req.pipeline_id
        if req.metrics is not None:
            self._publish(org_id, pid, METRICS_EVENT, req.metrics)
        row = await self._load(org_id, pid)
        destination = row.destination
        try:
            chain = self._chain(pid, row.version, row.transforms)
        except Exception as exc:  # a config that no longer compiles (engine upgrade)
            raise ApplicationError(
                f"transforms do not compile: {exc}", type="ConfigError", non_retryable=True
            ) from None
        state = req.state.model_copy(deep=True)
        cs = await self._input_chain_state(state, row.version, chain)
        parking = req.mode == "dead_letter"
        state_failed = parking and req.failed_stage == "state"
        items: list[Item] = []
        if req.mode == "flush":
            out = chain.flush(cs)
        else:
            items = await self._next_items(req, chain, cs, row.version)
            deadline = chain.next_deadline_ms(cs)
            now = _now_ms()
            if state_failed:
                if not items:  # a timer's state cannot be saved: nothing to park, cannot go on
                    raise ApplicationError(
                        req.error or "the pipeline state could not be saved",
                        type="StateError",
                        non_retryable=True,
                    )
                # The state this batch produced could not be saved: park its input items with
                # the error (replay re-ingests them) and keep the previous state.
                error = req.error or "the pipeline state could not be saved"
                out = ChainOutput(failed=[(it, error) for it in items], state=cs)
            elif items or (deadline is not None and deadline <= now):
                try:
                    out = chain.process(cs, items, now)
                except Exception as exc:
                    if not parking:
                        raise
                    # The chain itself fails on this batch: park the input items, keep the state.
                    out = ChainOutput(
                        failed=[(it, f"transform error: {exc}") for it in items], state=cs
                    )
            else:
                out = ChainOutput(state=cs)

        delta = Counters(processed=len(items), filtered=out.filtered)
        dead: list[tuple[str, list[DeadEntry]]] = []
        transform_dead = [
            (it.value, it.offset, it.offset, it.ingest_ms, reason) for it, reason in out.failed
        ]
        transform_dead += [
            (it.value, it.offset, it.offset, it.ingest_ms, "late: its window had already closed")
            for it in out.late
        ]
        if transform_dead:
            dead.append(("transform", transform_dead))
        delta.failed += len(transform_dead)

        outputs = out.outputs
        deliver = bool(outputs) and not parking
        if outputs and parking:
            # Outputs the failed attempts did deliver are not parked (they would be twice).
            done = _delivered_prefix(outputs, req.delivered_prefix)
            error = req.error or "delivery failed"
            parked = [
                (o.value, o.first_offset, o.last_offset, o.ingest_ms, why)
                for o, why in _refused_in_prefix(outputs, req.delivered_prefix, done)
            ]
            delta.delivered += done - len(parked)
            parked += [
                (o.value, o.first_offset, o.last_offset, o.ingest_ms, error) for o in outputs[done:]
            ]
            if parked:
                dead.append(("delivery", parked))
            delta.failed += len(parked)
        elif deliver:
            delta.delivered += len(outputs)  # corrected below for items the destination refused
        delta.dead_lettered = sum(len(entries) for _, entries in dead)

        committed = items[-1].offset if items else state.committed_offset
        if parking and req.through_offset is not None and not items:
            committed = max(committed, min(req.through_offset, row.last_offset))
        state.committed_offset = committed
        input_ref = state.chain_state_ref
        chain_state, escaped, text = store_chain_state(out.state.model_dump())
        state.chain_state, state.chain_state_escaped = chain_state, escaped
        state.chain_state_ref = None
        state.chain_version = row.version
        state.counters.add(delta)
        last = items[-1].offset if items else (outputs[-1].last_offset if outputs else committed)
        # Everything that can fail for a reason retrying cannot fix (a state or a dead letter
        # the database refuses) is written BEFORE delivery: a failure then delivers nothing,
        # and a delivered batch is never delivered again because its bookkeeping failed.
        await self._save(
            org_id,
            pid,
            state,
            dead,
            text,
            last,
            prune=req.prune and not deliver,
            input_ref=input_ref,
        )
        latencies: list[float] = []
        if deliver:
            rejected = await self._deliver(org_id, pid, destination, outputs, hb, items)
            done_ms = _now_ms()
            refused = {id(o) for o, _ in rejected}
            latencies = [max(0, done_ms - o.ingest_ms) for o in outputs if id(o) not in refused]
            if rejected:
                fix = Counters(
                    delivered=-len(rejected), failed=len(rejected), dead_lettered=len(rejected)
                )
                delta.add(fix)
                state.counters.add(fix)
                entries = [
                    (o.value, o.first_offset, o.last_offset, o.ingest_ms, why)
                    for o, why in rejected
                ]
                try:
                    await self._commit(org_id, pid, state, [("delivery", entries)])
                except Exception:
                    # Retried with the delivered prefix recorded: nothing is delivered twice.
                    activity.heartbeat(hb.details)
                    raise
            if req.prune:
                with contextlib.suppress(Exception):  # housekeeping: the next prune catches up
                    await self._prune(pid, state.committed_offset)
        buckets: dict[int, int] = {}
        for ms in latencies:
            b = latency_bucket(ms)
            buckets[b] = buckets.get(b, 0) + 1
        return ProcessBatchResult(
            state=state,
            delta=delta,
            items=len(items),
            last_offset=max(row.last_offset, committed),
            latency_count=len(latencies),
            latency_total_ms=float(sum(latencies)),
            latency_buckets=buckets,
            **dict(batch_settings(row.options, destination)),
        )

    async def _save(
        self,
        org_id: str,
        pid: str,
        state: PipelineState,
        dead: list[tuple[str, list[DeadEntry]]],
        text: str,
        last: int,
        *,
        prune: bool,
        input_ref: int | None,
    ) -> None:
        """`_commit`, with a refusal by the database (a value it cannot store, a constraint, a
        trigger) turned into a non-retryable StateError: the workflow then parks the batch's
        items and keeps the previous state. Connection trouble stays retryable."""
        try:
            await self._commit(
                org_id, pid, state, dead, prune=prune, input_ref=input_ref, text=text
            )
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            raise ApplicationError(
                f"the pipeline state could not be saved: {exc}".strip(),
                {"lastOffset": last},
                type="StateError",
                non_retryable=True,
            ) from None

    async def _deliver(
        self,
        org_id: str,
        pid: str,
        destination: dict[str, Any],
        outputs: list[OutItem],
        hb: _DeliveredPrefix | None,
        items: list[Item],
    ) -> list[tuple[OutItem, str]]:
        """Deliver; returns the outputs the destination refused one by one, with the reason."""
        try:
            dest = get_destination(destination["type"])
            config = await self._resolved(org_id, destination.get("config") or {})
            skip = hb.already_delivered(outputs) if hb is not None else 0
            delivery = Delivery(items=outputs[skip:])
            if hb is not None and skip:
                delivery.rejected += _refused_in_prefix(outputs, hb.previous, skip)
            progress = hb.tracker(outputs, skip, delivery.rejected) if hb is not None else None
            context = self._context(org_id, pid, config, progress)
            await dest.deliver(context, delivery)
            return delivery.rejected
        except DeliveryError as exc:
            if hb is not None and activity.in_activity():
                activity.heartbeat(hb.details)  # the confirmed prefix, for the next attempt
            attempt = activity.info().attempt if activity.in_activity() else 1
            self._publish(
                org_id,
                pid,
                DELIVERY_FAILED_EVENT,
                {
                    "attempt": attempt,
                    "error": str(exc),
                    "retryable": exc.retryable,
                    "firstOffset": outputs[0].first_offset,
                    "lastOffset": outputs[-1].last_offset,
                },
            )
            last = items[-1].offset if items else outputs[-1].last_offset
            details: dict[str, Any] = {"lastOffset": last}
            if hb is not None:
                details["delivered"] = dict(hb.details)
            raise ApplicationError(
                str(exc),
                details,
                type="DeliveryError",
                non_retryable=not exc.retryable,
                next_retry_delay=timedelta(seconds=exc.retry_after_s)
                if exc.retry_after_s
                else None,
            ) from None
        except KeyError:
            raise ApplicationError(
                f"unknown destination type {destination.get('type')!r}",
                type="ConfigError",
                non_retryable=True,
            ) from None

    async def _commit(
        self,
        org_id: str,
        pid: str,
        state: PipelineState,
        dead: list[tuple[str, list[DeadEntry]]],
        *,
        prune: bool = False,
        input_ref: int | None = None,
        text: str | None = None,
    ) -> None:
        """Dead letters, a by-reference chain state and the state mirror, in one transaction.
        `text`: the chain state's JSON, when the caller has it already."""
        async with self._pool.connection() as conn, conn.transaction():
            if state.chain_state is not None:
                if text is None:
                    text = json.dumps(state.chain_state, separators=(",", ":"))
                if len(text) > INLINE_STATE_BYTES:
                    cursor = await conn.execute(
                        "INSERT INTO pipeline_chain_states (pipeline_id, org_id, state) "
                        "VALUES (%s, %s, %s::jsonb) RETURNING id",
                        (pid, org_id, text),
                    )
                    ref_row = await cursor.fetchone()
                    assert ref_row is not None
                    state.chain_state, state.chain_state_ref = None, int(ref_row[0])
            if input_ref is not None:
                # States older than this batch's input can no longer be needed: the workflow
                # only ever moves forward from its input (or to a newer restored state).
                await conn.execute(
                    "DELETE FROM pipeline_chain_states WHERE pipeline_id = %s AND id < %s",
                    (pid, input_ref),
                )
            for stage, entries in dead:
                rows = _dead_letter_rows(org_id, pid, stage, entries)
                await conn.execute(
                    "INSERT INTO pipeline_dead_letters (org_id, pipeline_id, stage, first_offset, "
                    "last_offset, value, ingest_ms, error, dedup) "
                    "SELECT o, p, s, f, l, v::json, i, e, d FROM unnest(%s::text[], %s::text[], "
                    "%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::text[], "
                    "%s::text[]) AS t(o, p, s, f, l, v, i, e, d) ON CONFLICT DO NOTHING",
                    [list(col) for col in zip(*rows, strict=True)],
                )
            await conn.execute(
                "UPDATE pipelines SET committed_offset = %s, state = %s::jsonb WHERE id = %s AND org_id = %s",
                (state.committed_offset, state.model_dump_json(), pid, org_id),
            )
            if prune:
                await self._prune(pid, state.committed_offset, conn)

    async def _prune(
        self, pid: str, committed: int, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> None:
        """Processed items are only needed for restoring checkpoints (kept from the oldest one
        on) and as dedup keys (kept for options.retentionHours)."""
        statement = (
            'DELETE FROM pipeline_items WHERE pipeline_id = %(id)s AND "offset" <= '
            'LEAST(%(committed)s, COALESCE((SELECT min("offset") FROM pipeline_checkpoints '
            "WHERE pipeline_id = %(id)s), %(committed)s)) AND ingested_at < now() - "
            "make_interval(secs => (SELECT coalesce((options->>'retentionHours')::float, "
            "24) * 3600 FROM pipelines WHERE id = %(id)s))"
        )
        params = {"id": pid, "committed": committed}
        if conn is not None:
            await conn.execute(statement, params)
            return
        async with self._pool.connection() as own:
            await own.execute(statement, params)

    async def _load_chain_state(self, ref: int) -> dict[str, Any]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT state FROM pipeline_chain_states WHERE id = %s", (ref,)
            )
            row = await cursor.fetchone()
        if row is None:
            raise ApplicationError(
                f"chain state {ref} is gone", type="ConfigError", non_retryable=True
            )
        return dict(row[0])

    async def inline(self, state: PipelineState) -> PipelineState:
        """The state with its chain state inline (checkpoints are self-contained)."""
        if state.chain_state_ref is None:
            return state
        chain = await self._load_chain_state(state.chain_state_ref)
        return state.model_copy(update={"chain_state": chain, "chain_state_ref": None})

    @activity.defn(name="pipeline_save_checkpoint")
    async def save_checkpoint(self, req: SaveCheckpointInput) -> str:
        checkpoint_id = new_id("ckpt")
        req = req.model_copy(update={"state": await self.inline(req.state)})
        async with self._pool.connection() as conn:
            await conn.execute(
                'INSERT INTO pipeline_checkpoints (id, org_id, pipeline_id, "offset", state) '
                "VALUES (%s, %s, %s, %s, %s::jsonb)",
                (
                    checkpoint_id,
                    req.org_id,
                    req.pipeline_id,
                    req.state.committed_offset,
                    req.state.model_dump_json(),
                ),
            )
        return checkpoint_id

    @activity.defn(name="pipeline_set_status")
    async def set_status(self, req: SetStatusInput) -> None:
        """Record a status the workflow decided (e.g. `failed`) and announce it."""
        async with self._pool.connection() as conn:
            if req.state is not None:
                await conn.execute(
                    "UPDATE pipelines SET committed_offset = %s, state = %s::jsonb "
                    "WHERE id = %s AND org_id = %s",
                    (
                        req.state.committed_offset,
                        req.state.model_dump_json(),
                        req.pipeline_id,
                        req.org_id,
                    ),
                )
            cursor = await conn.execute(
                "UPDATE pipelines p SET status = %s, error = %s, updated_at = now() "
                "FROM (SELECT status FROM pipelines WHERE id = %s AND org_id = %s FOR UPDATE) old "
                "WHERE p.id = %s RETURNING old.status",
                (req.status, req.error, req.pipeline_id, req.org_id, req.pipeline_id),
            )
            row = await cursor.fetchone()
        if row is not None and row[0] != req.status:
            await self._publisher.publish(
                req.org_id,
                stream_key(req.pipeline_id),
                STATUS_EVENT,
                {
                    "pipelineId": req.pipeline_id,
                    "status": req.status,
                    "previous": row[0],
                    "error": req.error,
                },
            )

    @activity.defn(name="pipeline_save_state")
    async def save_state(self, req: SaveStateInput) -> None:
        """Mirror the workflow's state into `pipelines` (on stop, after a restore)."""
        await self._commit(req.org_id, req.pipeline_id, req.state, [])

    @activity.defn(name="pipeline_replay_dead_letters")
    async def replay_dead_letters(self, req: ReplayInput) -> ReplayResult:
        """Transform-stage dead letters are re-ingested at the tail of the log; delivery-stage
        ones (already transformed) are redelivered as they are, oldest first. A failure stops the
        replay and leaves the rest in place."""
        result = ReplayResult()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, stage, first_offset, last_offset, value, ingest_ms FROM pipeline_dead_letters "
                "WHERE pipeline_id = %s AND org_id = %s AND replayed_at IS NULL ORDER BY id LIMIT %s",
                (req.pipeline_id, req.org_id, req.limit),
            )
            rows = await cursor.fetchall()
        row_info = await self._load(req.org_id, req.pipeline_id)
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            activity.heartbeat(start)
            reingest = [r for r in chunk if r[1] != "delivery"]
            redeliver = [r for r in chunk if r[1] == "delivery"]
            still_refused: set[int] = set()  # rows the destination refused again: kept
            try:
                if redeliver:
                    outputs = [
                        OutItem(value=r[4], first_offset=r[2], last_offset=r[3], ingest_ms=r[5])
                        for r in redeliver
                    ]
                    row_of = {id(o): r[0] for o, r in zip(outputs, redeliver, strict=True)}
                    refused = await self._deliver(
                        req.org_id, req.pipeline_id, row_info.destination, outputs, None, []
                    )
                    still_refused = {row_of[id(o)] for o, _ in refused}
                    if refused:
                        result.failed += len(refused)
                        result.error = refused[0][1]
                if reingest:
                    await ingest_items(
                        self._db, req.org_id, req.pipeline_id, [r[4] for r in reingest]
                    )
            except Exception as exc:
                result.failed += len(rows) - start
                result.error = str(exc)
                return result
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE pipeline_dead_letters SET replayed_at = now(), attempts = attempts + 1 WHERE id = ANY(%s)",
                    ([r[0] for r in chunk if r[0] not in still_refused],),
                )
                if still_refused:
                    await conn.execute(
                        "UPDATE pipeline_dead_letters SET attempts = attempts + 1 WHERE id = ANY(%s)",
                        (list(still_refused),),
                    )
            result.redelivered += len(redeliver) - len(still_refused)
            result.reingested += len(reingest)
        return result

    async def close(self) -> None:
        await self._notifier.close()
        if self._http is not None:
            await self._http.aclose()
