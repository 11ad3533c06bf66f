"""The per-pipeline item log: durable appends with monotonically increasing offsets.

Offsets come from a per-pipeline counter row (`pipeline_offsets.last_offset`). One statement
bumps the counter, inserts the items and queues a NOTIFY. The UPDATE row-locks the counter until
commit, so two concurrent ingests into the same pipeline commit in offset order: a reader that
sees offset N has seen every committed offset below N, and the workflow — which reads "everything
after my committed offset" — can never skip an item that committed late. Different pipelines
never contend, and the worker (which updates `pipelines`, not the counter) never waits on ingest.

Backpressure is checked in the same statement: the counter is only bumped while
`last_offset - pipelines.committed_offset` (pending) is below `options.maxPending`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deeployd.idempotency import IdempotencyKey, KeyTaken, lookup, remember
from deeployd.pipelines.errors import BackpressureExceeded, PipelineNotFound

if TYPE_CHECKING:
    from deeployd.db import Database

ITEMS_CHANNEL = "deeployd_pipeline_items"
DEFAULT_MAX_PENDING = 100_000
MAX_BATCH_ITEMS = 10_000
RETRY_AFTER_S = 1.0

_MAX_PENDING_SQL = f"coalesce((p.options->>'maxPending')::bigint, {DEFAULT_MAX_PENDING})"

_BUMP = f"""
WITH bump AS (
    UPDATE pipeline_offsets o SET last_offset = o.last_offset + %(n)s
    FROM pipelines p
    WHERE o.pipeline_id = %(id)s AND p.id = %(id)s AND p.org_id = %(org)s
      AND o.last_offset - p.committed_offset < {_MAX_PENDING_SQL}
    RETURNING o.last_offset - %(n)s AS base
), ins AS (
    INSERT INTO pipeline_items (pipeline_id, org_id, "offset", value, dedup_key)
    SELECT %(id)s, %(org)s, bump.base + v.ord, v.value, v.key
    FROM bump, __ROWS__
    __CONFLICT__
    RETURNING "offset", dedup_key
), note AS (
    SELECT pg_notify('{ITEMS_CHANNEL}', %(id)s) FROM bump
)
SELECT (SELECT base FROM bump),
       (SELECT count(*) FROM note),
       coalesce((SELECT array_agg("offset" ORDER BY "offset") FROM ins), '{{}}'),
       coalesce((SELECT array_agg(dedup_key ORDER BY "offset") FROM ins), '{{}}')
"""
_UNNEST = (
    "unnest(%(values)s::text[]::json[], %(keys)s::text[]) WITH ORDINALITY AS v(value, key, ord)"
)
# A JSON array (already validated as objects by the caller) split by PostgreSQL itself: the API
# passes a /batch body through without re-serialising every item.
_ARRAY = (
    "(SELECT e.value, NULL::text AS key, e.ord FROM json_array_elements(%(array)s::json) "
    "WITH ORDINALITY AS e(value, ord)) AS v"
)
_APPEND_PLAIN = _BUMP.replace("__ROWS__", _UNNEST).replace("__CONFLICT__", "")
_APPEND_DEDUP = _BUMP.replace("__ROWS__", _UNNEST).replace("__CONFLICT__", "ON CONFLICT DO NOTHING")
_APPEND_ARRAY = _BUMP.replace("__ROWS__", _ARRAY).replace("__CONFLICT__", "")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


async def ingest_items(
    db: Database,
    org_id: str,
    pipeline_id: str,
    items: list[dict[str, Any]],
    *,
    dedup_keys: list[str] | None = None,
    idempotency: IdempotencyKey | None = None,
) -> list[int]:
    """Append `items` durably (one statement) and return their offsets, in input order.

    With `dedup_keys` (one per item, unique per pipeline), an item whose key was already
    ingested is not appended again; its entry in the result is the offset it got the first time.
    With `idempotency`, a request already answered gets the first answer's offsets and nothing
    is appended (the key is committed with the items: see deeployd/idempotency.py).
    Raises PipelineNotFound, or BackpressureExceeded when pending >= options.maxPending.
    """
    if not items:
        await _require_pipeline(db, org_id, pipeline_id)
        return []
    if dedup_keys is not None and len(dedup_keys) != len(items):
        raise ValueError("dedup_keys must have one key per item")
    if dedup_keys is not None and idempotency is not None:
        raise ValueError("dedup_keys already make the append idempotent; pass one or the other")
    params = {
        "id": pipeline_id,
        "org": org_id,
        "n": len(items),
        "values": [_dumps(item) for item in items],
        "keys": dedup_keys if dedup_keys is not None else [None] * len(items),
    }
    sql = _APPEND_DEDUP if dedup_keys is not None else _APPEND_PLAIN
    row = await _append(db, sql, params, idempotency)
    if isinstance(row, list):
        return row  # the stored answer to an earlier request with the same key
    base, _, offsets, keys = row
    if base is None:
        await _raise_refusal(db, org_id, pipeline_id)
    if dedup_keys is None:
        return list(offsets)
    return await _offsets_by_key(db, pipeline_id, dedup_keys, dict(zip(keys, offsets, strict=True)))


async def ingest_json_array(
    db: Database,
    org_id: str,
    pipeline_id: str,
    array_text: str,
    count: int,
    *,
    idempotency: IdempotencyKey | None = None,
) -> list[int]:
    """Like ingest_items for a JSON array text of `count` objects (validated by the caller)."""
    params = {"id": pipeline_id, "org": org_id, "n": count, "array": array_text}
    row = await _append(db, _APPEND_ARRAY, params, idempotency)
    if isinstance(row, list):
        return row
    if row[0] is None:
        await _raise_refusal(db, org_id, pipeline_id)
    return list(row[2])


async def _append(
    db: Database, sql: str, params: dict[str, Any], idempotency: IdempotencyKey | None
) -> tuple[Any, ...] | list[int]:
    """Run one append statement; with a key, in one transaction with the key's row (or return
    the offsets stored for the key, appending nothing)."""
    while True:
        try:
            async with db.pool.connection() as conn:
                if idempotency is not None:
                    stored = await lookup(conn, idempotency)
                    if stored is not None:
                        return [int(o) for o in stored.body["offsets"]]
                cursor = await conn.execute(sql, params)
                row = await cursor.fetchone()
                assert row is not None
                if idempotency is not None and row[0] is not None:
                    await remember(conn, idempotency, 202, {"offsets": list(row[2])})
                return tuple(row)
        except KeyTaken:
            continue  # rolled back; the next lookup finds the winner's answer


async def latest_offset(db: Database, pipeline_id: str) -> int:
    """The highest offset handed out so far (0 for an empty log)."""
    async with db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT last_offset FROM pipeline_offsets WHERE pipeline_id = %s", (pipeline_id,)
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _offsets_by_key(
    db: Database, pipeline_id: str, keys: list[str], appended: dict[str, int]
) -> list[int]:
    missing = [k for k in set(keys) if k not in appended]
    if missing:
        async with db.pool.connection() as conn:
            cursor = await conn.execute(
                'SELECT dedup_key, "offset" FROM pipeline_items '
                "WHERE pipeline_id = %s AND dedup_key = ANY(%s)",
                (pipeline_id, missing),
            )
            appended.update({k: o for k, o in await cursor.fetchall()})
    return [appended.get(k, -1) for k in keys]


async def _require_pipeline(db: Database, org_id: str, pipeline_id: str) -> None:
    async with db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM pipelines WHERE id = %s AND org_id = %s", (pipeline_id, org_id)
        )
        if await cursor.fetchone() is None:
            raise PipelineNotFound(pipeline_id)


async def _raise_refusal(db: Database, org_id: str, pipeline_id: str) -> None:
    """The append matched no row: tell 'no such pipeline' from 'too much pending'."""
    async with db.pool.connection() as conn:
        cursor = await conn.execute(
            f"SELECT o.last_offset - p.committed_offset, {_MAX_PENDING_SQL} "
            "FROM pipelines p JOIN pipeline_offsets o ON o.pipeline_id = p.id "
            "WHERE p.id = %s AND p.org_id = %s",
            (pipeline_id, org_id),
        )
        row = await cursor.fetchone()
    if row is None:
        raise PipelineNotFound(pipeline_id)
    raise BackpressureExceeded(int(row[0]), int(row[1]), RETRY_AFTER_S)


@dataclass(frozen=True)
class PipelineSourceRef:
    id: str
    org_id: str
    source: dict[str, Any]


async def pipelines_with_source(
    db: Database, org_id: str | None, source_type: str
) -> list[PipelineSourceRef]:
    """Running or paused pipelines whose `source.type` is `source_type` (all orgs when None).

    Paused pipelines are included: they keep accepting items, and deliver them on resume.
    """
    sql = (
        "SELECT id, org_id, source FROM pipelines WHERE status IN ('running', 'paused') "
        "AND source->>'type' = %s"
    )
    params: list[Any] = [source_type]
    if org_id is not None:
        sql += " AND org_id = %s"
        params.append(org_id)
    async with db.pool.connection() as conn:
        cursor = await conn.execute(sql + " ORDER BY created_at", params)
        rows = await cursor.fetchall()
    return [PipelineSourceRef(id=r[0], org_id=r[1], source=r[2]) for r in rows]
