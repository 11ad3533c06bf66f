"""The source router: event-log and change-table rows -> pipeline logs, exactly once.

One pass (`route_once`) does two things:
1. Agent run events. It reads `events` rows of the routable types after its cursor, up to the
   highest id committed right now (`EventPublisher` makes id order commit order, so nothing can
   later appear below that id), and ingests each into every matching `agent_execution` pipeline
   of the event's organisation with dedup key `event:<eventId>`. The new cursor is returned; the
   `SourceRouterWorkflow` keeps it. A pass that crashes before returning is simply redone: the
   dedup keys make the second append a no-op.
2. Database changes. It drains `deeployd_cdc_changes` of the running/paused `database_change`
   pipelines (ingest with `cdc:<changeId>`, then delete what was ingested).

`run_router` repeats passes for one activity's lifetime, sleeping on LISTEN `deeployd_events` /
`deeployd_cdc` between them (bounded), so an idle router costs a few cheap queries a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from deeployd.eventlog import NOTIFY_CHANNEL
from deeployd.pipelines.errors import BackpressureExceeded, PipelineNotFound
from deeployd.pipelines.ingest import ingest_items, pipelines_with_source
from deeployd.pipelines.sources import agent_execution, database_change

if TYPE_CHECKING:
    from deeployd.services import Services

log = logging.getLogger(__name__)

EVENT_PAGE = 2000
EXTERNAL_POLL_S = 2.0
MIN_PASS_INTERVAL_S = 0.02
CLEAN_UP_INTERVAL_S = 60.0


@dataclass
class PassResult:
    cursor: int
    events_routed: int = 0
    changes_routed: int = 0
    more: bool = False  # a page was full: call again without waiting
    backpressured: list[str] = field(default_factory=list)


async def current_event_id(services: Services) -> int:
    async with services.db.pool.connection() as conn:
        cursor = await conn.execute("SELECT coalesce(max(id), 0) FROM events")
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _start_ids(services: Services, pipeline_ids: list[str]) -> dict[str, int]:
    """The event id each pipeline starts after: it is never fed older events.

    Recorded by `lifecycle.on_pipeline_created`; for a pipeline without that record, the last
    event committed before the pipeline was created.
    """
    if not pipeline_ids:
        return {}
    async with services.db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT p.id, coalesce(s.start_event_id, (SELECT coalesce(max(e.id), 0) FROM events e "
            "WHERE e.created_at < p.created_at)) FROM pipelines p "
            "LEFT JOIN pipeline_source_state s ON s.pipeline_id = p.id WHERE p.id = ANY(%s)",
            (pipeline_ids,),
        )
        return {row[0]: int(row[1]) for row in await cursor.fetchall()}


async def _ingest(
    services: Services,
    org_id: str,
    pipeline_id: str,
    items: list[dict[str, Any]],
    keys: list[str],
    result: PassResult,
) -> bool:
    try:
        await ingest_items(services.db, org_id, pipeline_id, items, dedup_keys=keys)
        return True
    except PipelineNotFound:
        return True  # deleted meanwhile: nothing to deliver to
    except BackpressureExceeded:
        result.backpressured.append(pipeline_id)
        return False


async def route_events(services: Services, cursor: int, result: PassResult) -> None:
    high = await current_event_id(services)
    if high <= cursor:
        return
    async with services.db.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, org_id, type, data FROM events WHERE id > %s AND id <= %s "
                "AND type = ANY(%s) ORDER BY id LIMIT %s",
                (cursor, high, list(agent_execution.ROUTABLE_TYPES), EVENT_PAGE),
            )
        ).fetchall()
    new_cursor = rows[-1][0] if len(rows) == EVENT_PAGE else high
    result.more = result.more or len(rows) == EVENT_PAGE
    if rows:
        refs = await pipelines_with_source(services.db, None, "agent_execution")
        starts = await _start_ids(services, [r.id for r in refs])
        by_org: dict[str, list[Any]] = {}
        for ref in refs:
            by_org.setdefault(ref.org_id, []).append(ref)
        batches: dict[str, tuple[str, list[dict[str, Any]], list[str]]] = {}
        for event_id, org_id, event_type, data in rows:
            for ref in by_org.get(org_id, ()):
                if event_id <= starts.get(ref.id, 0):
                    continue
                if agent_execution.matches(ref.source, event_type, data):
                    _, items, keys = batches.setdefault(ref.id, (org_id, [], []))
                    items.append(agent_execution.item_for(event_type, data))
                    keys.append(f"event:{event_id}")
        for pipeline_id, (org_id, items, keys) in batches.items():
            if await _ingest(services, org_id, pipeline_id, items, keys, result):
                result.events_routed += len(items)
    if not result.backpressured:
        result.cursor = new_cursor


async def drain_changes(services: Services, result: PassResult, *, external: bool) -> None:
    refs = await pipelines_with_source(services.db, None, "database_change")
    platform = [r for r in refs if not r.source.get("connection")]
    if platform:
        async with services.db.pool.connection() as conn:
            changes = await database_change.read_changes(conn, [(r.id, r.org_id) for r in platform])
        await _route_changes(services, {r.id: r for r in platform}, changes, None, result)
    if not external:
        return
    for ref in refs:
        if not ref.source.get("connection"):
            continue
        try:
            target = await database_change.resolve_target(services, ref.org_id, ref.source)
            async with database_change.external_connection(services, target) as conn:
                changes = await database_change.read_changes(conn, [(ref.id, ref.org_id)])
                await _route_changes(services, {ref.id: ref}, changes, conn, result)
        except Exception:
            log.warning("database_change: cannot drain pipeline %s", ref.id, exc_info=True)


async def _route_changes(
    services: Services,
    refs: dict[str, Any],
    changes: list[database_change.Change],
    conn: psycopg.AsyncConnection[Any] | None,
    result: PassResult,
) -> None:
    if not changes:
        return
    result.more = result.more or len(changes) == database_change.DRAIN_BATCH
    grouped: dict[str, list[database_change.Change]] = {}
    for change in changes:
        grouped.setdefault(change.pipeline_id, []).append(change)
    done: list[int] = []
    for pipeline_id, group in grouped.items():
        ref = refs[pipeline_id]
        wanted = ref.source.get("operations") or database_change.OPERATIONS
        keep = [c for c in group if c.item["op"] in wanted]
        ok = not keep or await _ingest(
            services,
            ref.org_id,
            pipeline_id,
            [c.item for c in keep],
            [f"cdc:{c.id}" for c in keep],
            result,
        )
        if ok:
            done += [c.id for c in group]
            result.changes_routed += len(keep)
    if conn is not None:
        await database_change.delete_changes(conn, done)
    else:
        async with services.db.pool.connection() as platform:
            await database_change.delete_changes(platform, done)


async def route_once(
    services: Services, cursor: int, *, external: bool, events: bool = True, changes: bool = True
) -> PassResult:
    result = PassResult(cursor=cursor)
    if events:
        await route_events(services, cursor, result)
    if changes or external:
        await drain_changes(services, result, external=external)
    return result


class Listener:
    """A LISTEN connection for `deeployd_events` and `deeployd_cdc`, used to sleep until work."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> Listener:
        self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        await self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        await self._conn.execute(f"LISTEN {database_change.CDC_CHANNEL}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    async def wait(self, seconds: float) -> set[str]:
        """The channels notified (empty: `seconds` passed with no notification)."""
        assert self._conn is not None
        channels: set[str] = set()
        async for note in self._conn.notifies(timeout=seconds, stop_after=1):
            channels.add(note.channel)
        return channels


async def run_router(
    services: Services,
    cursor: int,
    *,
    seconds: float,
    idle_wait_s: float = 1.0,
    heartbeat: Callable[[int], None] = lambda _: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[int, int]:
    """Route repeatedly for about `seconds`; returns (cursor, items routed).

    A notification wakes only the half of the work it concerns (event log or change table), and
    passes are at least MIN_PASS_INTERVAL_S apart: a busy event log (token streams NOTIFY
    hundreds of times a second) costs at most ~50 cheap passes a second, not one per NOTIFY.
    Every `idle_wait_s` without a notification, both halves run anyway (a missed NOTIFY, e.g.
    across a reconnect, delays routing by at most that long).
    """
    deadline = time.monotonic() + seconds
    routed = 0
    next_external = 0.0
    wake = {NOTIFY_CHANNEL, database_change.CDC_CHANNEL}
    last_pass = 0.0
    next_clean_up = time.monotonic() + CLEAN_UP_INTERVAL_S
    async with Listener(services.db.url) as listener:
        while True:
            gap = last_pass + MIN_PASS_INTERVAL_S - time.monotonic()
            if gap > 0:
                await sleep(gap)
            now = last_pass = time.monotonic()
            external = now >= next_external
            if external:
                next_external = now + EXTERNAL_POLL_S
            result = await route_once(
                services,
                cursor,
                external=external,
                events=NOTIFY_CHANNEL in wake,
                changes=database_change.CDC_CHANNEL in wake,
            )
            cursor = result.cursor
            routed += result.events_routed + result.changes_routed
            heartbeat(cursor)
            if now >= next_clean_up:
                next_clean_up = now + CLEAN_UP_INTERVAL_S
                try:
                    await database_change.clean_up(services.db.pool)
                except Exception:  # housekeeping must never stop routing
                    log.warning("database_change clean-up failed", exc_info=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return cursor, routed
            wake = {NOTIFY_CHANNEL, database_change.CDC_CHANNEL}
            if result.backpressured:
                # Some pipeline is full: the cursor stayed put; retry the same events shortly
                # (pipelines that took them already drop the copies by dedup key).
                log.warning("source router: backpressured pipelines %s", result.backpressured)
                await sleep(min(1.0, remaining))
            elif not result.more:
                wake = await listener.wait(min(idle_wait_s, remaining)) or wake
