"""The durable event log and its live bus.

Every streamed event is a row in `events`. Writers go through `EventPublisher`, which coalesces
events published within a few milliseconds into one transaction: one advisory lock, one INSERT,
one `NOTIFY`. Taking the lock before ids are drawn makes id order equal commit order, so a reader
that has seen id N has seen every committed id below N — which is what lets SSE clients resume
by `Last-Event-ID` with no gap and no duplicate.

Each API process runs one `EventBus`: a single `LISTEN` connection that, when woken, reads every
new row once and fans it out to in-process subscribers through bounded queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from deeployd.pglisten import listen_forever

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "deeployd_events"
_COMMIT_ORDER_LOCK = 7265002
_FETCH_PAGE = 2000
# The bus hands out new events in small pages and yields between them, so readers that keep
# up drain their mailboxes during a burst instead of all overflowing at once.
_DISPATCH_PAGE = 256


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_payload(event_type: str, data: dict[str, Any]) -> str:
    """The JSON object clients receive: the event's fields plus its `type`."""
    return json.dumps({**data, "type": event_type}, default=_json_default, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    org_id: str
    stream: str
    type: str
    payload: str  # JSON text including "type"; serialised once, sent to every subscriber as is
    created_at: datetime
    # The SSE frame, encoded on first use and then shared (the same bytes object) by every
    # subscriber of this event: with 1,000 readers of one stream, one encode instead of 1,000.
    _frame: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def data(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload)
        return result

    def sse_frame(self) -> bytes:
        """`id: <id>`, `data: <payload>`, blank line — the wire form of this event."""
        frame = self._frame
        if frame is None:
            frame = f"id: {self.id}\ndata: {self.payload}\n\n".encode()
            object.__setattr__(self, "_frame", frame)  # a cache, not a change of value
        return frame


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a reader wants: always one organisation, optionally some streams and types."""

    org_id: str
    streams: frozenset[str] | None = None
    types: frozenset[str] | None = None
    predicate: Callable[[StoredEvent], bool] | None = None

    def matches(self, event: StoredEvent) -> bool:
        if event.org_id != self.org_id:
            return False
        if self.streams is not None and event.stream not in self.streams:
            return False
        if self.types is not None and event.type not in self.types:
            return False
        return self.predicate is None or self.predicate(event)


_SELECT = "SELECT id, org_id, stream, type, data::text, created_at FROM events"


def _row(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(*row)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    org_id: str
    stream: str
    type: str
    payload: str
    future: asyncio.Future[int]


class EventPublisher:
    """Coalescing writer: events published within `coalesce_ms` share one insert and one NOTIFY."""

    def __init__(
        self, pool: AsyncConnectionPool, *, coalesce_ms: float = 2.0, max_batch: int = 500
    ) -> None:
        self._pool = pool
        self._coalesce = coalesce_ms / 1000
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def publish_nowait(
        self, org_id: str, stream: str, event_type: str, data: dict[str, Any] | None = None
    ) -> asyncio.Future[int]:
        """Queue an event; the future resolves to its id once it is committed."""
        if self._closed:
            raise RuntimeError("publisher is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        payload = encode_payload(event_type, data or {})
        self._pending.append(_Pending(org_id, stream, event_type, payload, future))
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="event-publisher")
        return future

    async def publish(
        self, org_id: str, stream: str, event_type: str, data: dict[str, Any] | None = None
    ) -> int:
        """Publish one event and wait until it is durable; returns its id."""
        return await self.publish_nowait(org_id, stream, event_type, data)

    async def publish_many(
        self, events: Iterable[tuple[str, str, str, dict[str, Any]]]
    ) -> list[int]:
        futures = [self.publish_nowait(*event) for event in events]
        return list(await asyncio.gather(*futures))

    async def flush(self) -> None:
        """Wait until everything published so far is committed."""
        futures = [p.future for p in self._pending]
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            # Give concurrent producers a moment to join this transaction.
            if len(self._pending) < self._max_batch:
                await asyncio.sleep(self._coalesce)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if not self._pending:
                self._wakeup.clear()
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            ids = await self._insert(batch)
        except Exception as exc:  # every waiter learns its event was not stored
            log.exception("event log write failed for %d events", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, event_id in zip(batch, ids, strict=True):
            if not item.future.done():
                item.future.set_result(event_id)

    async def _insert(self, batch: list[_Pending]) -> list[int]:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_COMMIT_ORDER_LOCK,))
            cursor = await conn.execute(
                "SELECT nextval(pg_get_serial_sequence('events', 'id')) "
                "FROM generate_series(1, %s)",
                (len(batch),),
            )
            ids = sorted(row[0] for row in await cursor.fetchall())
            await conn.execute(
                "INSERT INTO events (id, org_id, stream, type, data) "
                "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], "
                "%s::jsonb[])",
                (
                    ids,
                    [p.org_id for p in batch],
                    [p.stream for p in batch],
                    [p.type for p in batch],
                    [p.payload for p in batch],
                ),
            )
            await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(ids[-1])))
        return ids


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


async def read_events(
    pool: AsyncConnectionPool, flt: EventFilter, *, after: int, limit: int = _FETCH_PAGE
) -> list[StoredEvent]:
    """Events after id `after` that match the filter's columns, oldest first."""
    clauses = ["org_id = %s", "id > %s"]
    params: list[Any] = [flt.org_id, after]
    if flt.streams is not None:
        clauses.append("stream = ANY(%s)")
        params.append(list(flt.streams))
    if flt.types is not None:
        clauses.append("type = ANY(%s)")
        params.append(list(flt.types))
    params.append(limit)
    async with pool.connection() as conn:
        cursor = await conn.execute(
            f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY id LIMIT %s", params
        )
        return [_row(row) for row in await cursor.fetchall()]


async def replay(
    pool: AsyncConnectionPool, flt: EventFilter, *, after: int, until: int | None = None
) -> AsyncIterator[StoredEvent]:
    """Every stored event after `after` (and up to `until`) matching the filter, page by page."""
    cursor = after
    while True:
        page = await read_events(pool, flt, after=cursor)
        for event in page:
            if until is not None and event.id > until:
                return
            if flt.predicate is None or flt.predicate(event):
                yield event
        if len(page) < _FETCH_PAGE:
            return
        cursor = page[-1].id


@dataclass(eq=False)
class Subscription:
    """A live reader's bounded mailbox. When it overflows it stops receiving and is marked.

    The mailbox is a plain deque with a capacity rather than an `asyncio.Queue`: the bus fills
    it with whole pages (`offer_many`) and the reader empties it in pages (`drain`), so the
    per-event cost is a C-level extend/popleft instead of a Python `put_nowait`/`get_nowait`.
    """

    filter: EventFilter
    capacity: int
    mailbox: deque[StoredEvent] = field(default_factory=deque, repr=False)
    overflowed: bool = False
    closed: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The bus's index (stream or org) alone decides a match when the filter has no types and no
    # predicate; only the organisation is still compared (stream keys are not org-scoped).
    _by_index_only: bool = field(init=False)
    # Registered under several streams: the bus merges its events back into id order.
    _several_streams: bool = field(init=False)

    def __post_init__(self) -> None:
        flt = self.filter
        self._by_index_only = flt.types is None and flt.predicate is None
        self._several_streams = flt.streams is not None and len(flt.streams) > 1

    def offer(self, event: StoredEvent) -> None:
        self.offer_many((event,))

    def offer_many(self, events: Sequence[StoredEvent]) -> int:
        """Append events (in id order); returns how many fit. A full mailbox marks the overflow."""
        if self.overflowed or self.closed or not events:
            return 0
        room = self.capacity - len(self.mailbox)
        if len(events) > room:
            self.mailbox.extend(events[:room])
            self.overflowed = True
            accepted = room
        else:
            self.mailbox.extend(events)
            accepted = len(events)
        self._wake.set()
        return accepted

    def empty(self) -> bool:
        return not self.mailbox

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def wait(self) -> None:
        """Wait until there is something to read, an overflow, or a close."""
        while not self.mailbox and not self.overflowed and not self.closed:
            self._wake.clear()
            await self._wake.wait()

    def drain(self, limit: int) -> list[StoredEvent]:
        mailbox = self.mailbox
        if len(mailbox) <= limit:  # the usual case: take everything in one C-level copy
            items = list(mailbox)
            mailbox.clear()
            return items
        return [mailbox.popleft() for _ in range(limit)]


class EventBus:
    """One LISTEN connection per process, fanned out in-process to subscribers."""

    def __init__(self, url: str, pool: AsyncConnectionPool, *, queue_size: int = 2000) -> None:
        self._url = url
        self._pool = pool
        self._queue_size = queue_size
        self._by_stream: dict[str, set[Subscription]] = {}
        self._by_org: dict[str, set[Subscription]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self.cursor = 0
        self.delivered = 0

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_stream.values()) + sum(
            len(s) for s in self._by_org.values()
        )

    async def start(self) -> None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT coalesce(max(id), 0) FROM events")
            row = await cursor.fetchone()
            self.cursor = int(row[0]) if row else 0
        self._tasks = [
            asyncio.create_task(self._listen(), name="event-bus-listen"),
            asyncio.create_task(self._dispatch_loop(), name="event-bus-dispatch"),
        ]
        await asyncio.wait_for(self._ready.wait(), timeout=30)
        _tune_gc_for_fan_out()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for subs in (*self._by_stream.values(), *self._by_org.values()):
            for sub in subs:
                sub.close()
        self._by_stream.clear()
        self._by_org.clear()

    def subscribe(self, flt: EventFilter, *, queue_size: int | None = None) -> Subscription:
        sub = Subscription(flt, queue_size or self._queue_size)
        if flt.streams is not None:
            for stream in flt.streams:
                self._by_stream.setdefault(stream, set()).add(sub)
        else:
            self._by_org.setdefault(flt.org_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        index = self._by_stream if sub.filter.streams is not None else self._by_org
        for key in sub.filter.streams or (sub.filter.org_id,):
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]

    async def _listen(self) -> None:
        def connected() -> None:
            self._ready.set()
            self._wake.set()  # catch up on anything committed while we were away

        await listen_forever(
            self._url,
            [NOTIFY_CHANNEL],
            lambda _: self._wake.set(),
            on_connected=connected,
            name="event bus LISTEN",
        )

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._dispatch_new()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event bus fetch failed; retrying", exc_info=True)
                await asyncio.sleep(0.2)
                self._wake.set()

    async def _dispatch_new(self) -> None:
        while True:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(
                    f"{_SELECT} WHERE id > %s ORDER BY id LIMIT %s", (self.cursor, _FETCH_PAGE)
                )
                rows = await cursor.fetchall()
            for start in range(0, len(rows), _DISPATCH_PAGE):
                page = [_row(row) for row in rows[start : start + _DISPATCH_PAGE]]
                self._fan_out(page)
                self.cursor = page[-1].id
                await asyncio.sleep(0)
            if len(rows) < _FETCH_PAGE:
                return

    def _fan_out(self, events: list[StoredEvent]) -> None:
        """Hand a page of new events (id order) to every matching subscriber, in id order.

        Work is per (group, subscriber), not per (event, subscriber): events are grouped by
        (stream, org) and each subscriber of a group gets the group's matching events in one
        `offer_many` — one mailbox extend and one wake-up per page, however many events.
        """
        groups: dict[tuple[str, str], list[StoredEvent]] = {}
        for event in events:
            key = (event.stream, event.org_id)
            group = groups.get(key)
            if group is None:
                groups[key] = [event]
            else:
                group.append(event)

        # Subscribers of several streams see several groups; merge theirs back into id order.
        merged: dict[Subscription, list[StoredEvent]] = {}
        delivered = 0
        for (stream, org_id), group in groups.items():
            targets = self._by_stream.get(stream)
            if not targets:
                continue
            for sub in targets:
                flt = sub.filter
                if flt.org_id != org_id:
                    continue  # org isolation: the same stream key in another org
                matched = group if sub._by_index_only else [e for e in group if flt.matches(e)]
                if not matched:
                    continue
                if sub._several_streams:
                    merged.setdefault(sub, []).extend(matched)
                else:
                    delivered += sub.offer_many(matched)
        for sub, matched in merged.items():
            matched.sort(key=_event_id)
            delivered += sub.offer_many(matched)

        if self._by_org:  # org-wide readers: every stream of their org, already in id order
            for org_id in {key[1] for key in groups}:
                org_wide = self._by_org.get(org_id)
                if not org_wide:
                    continue
                of_org = [e for e in events if e.org_id == org_id]
                for sub in org_wide:
                    flt = sub.filter
                    matched = (
                        of_org if sub._by_index_only else [e for e in of_org if flt.matches(e)]
                    )
                    delivered += sub.offer_many(matched)
        self.delivered += delivered


def _event_id(event: StoredEvent) -> int:
    return event.id


_gc_tuned = False
# Young-generation threshold for processes that fan out: high enough that a round of wake-ups
# for 1,000 readers (futures, handles, frames) dies young instead of being promoted.
_GC_GEN0_THRESHOLD = 50_000


def _tune_gc_for_fan_out() -> None:
    """Keep the cyclic collector from pausing the event loop under fan-out (once per process).

    Fan-out allocates constantly (a wake-up per reader per event). With the default gen-0
    threshold (700) a round's short-lived objects were promoted and kept triggering full
    collections, each rescanning every long-lived object: the app, every imported module, ORM
    metadata, SDK clients (~250k at startup) plus ~300 per open stream. With 1,000 readers that
    paused the loop for 0.3-0.8 s at a time and set the p99 latency (bench/sse_fanout.py,
    docs/BENCHMARKS.md). So: freeze what is alive when the first bus starts — it lives as long as
    the process; frozen objects are still freed by reference counting, only cycles among them
    are no longer collected — and raise the gen-0 threshold so per-round garbage dies young.
    No collection before freezing: that would add a full pause to every start.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 and gen0 < _GC_GEN0_THRESHOLD:  # 0 means the collector is disabled: leave it
        gc.set_threshold(_GC_GEN0_THRESHOLD, gen1, gen2)


@dataclass(frozen=True)
class StreamEnd:
    """How a finite stream ends: its key, the event that ends it and that event's types."""

    key: str
    types: frozenset[str]
    ends: Callable[[StoredEvent], bool]


async def end_event_id(pool: AsyncConnectionPool, flt: EventFilter, end: StreamEnd) -> int | None:
    """The id of the event that ended the stream, or None while it has not ended."""
    narrowed = EventFilter(flt.org_id, flt.streams, end.types, flt.predicate)
    async for event in replay(pool, narrowed, after=0):
        if end.ends(event):
            return event.id
    return None
