"""`Idempotency-Key`: a retried request gets the first request's answer and creates nothing new.

A key is remembered per (organisation, route with its path parameters, key) together with a
fingerprint of the request body and the first answer. The row is written in the *same
transaction* as what the request creates (the ingested items, the message and its run, the
task), so a crash can never leave the effect without the key or the key without the effect.

Two requests with one key racing each other: both find no key, both do their work, and the
second one's INSERT of the key waits for the first to commit, then finds it taken
(`KeyTaken`), so its transaction — its effect included — rolls back and it answers with the
first one's stored response.

Keys are kept `idempotency_retention_hours` (24 h by default); an expired key is replaced by
the next request that uses it, and the event-retention schedule deletes expired rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(Exception):
    """The key was first used with a different request body."""


class KeyTaken(Exception):
    """A concurrent request with the same key committed first; roll back and replay its answer."""


@dataclass(frozen=True)
class IdempotencyKey:
    org_id: str
    scope: str
    key: str
    fingerprint: str
    retention: timedelta

    @classmethod
    def of(
        cls, org_id: str, scope: str, key: str, body: bytes | str, retention_hours: float
    ) -> IdempotencyKey:
        raw = body.encode() if isinstance(body, str) else body
        return cls(
            org_id=org_id,
            scope=scope,
            key=key,
            fingerprint=hashlib.sha256(raw).hexdigest(),
            retention=timedelta(hours=retention_hours),
        )


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


async def lookup(conn: AsyncConnection[Any], key: IdempotencyKey) -> StoredResponse | None:
    """The first answer given for `key` (within the retention window), or None.

    Raises IdempotencyKeyReused when the key came with a different body the first time.
    """
    cursor = await conn.execute(
        "SELECT fingerprint, status_code, response FROM idempotency_keys "
        "WHERE org_id = %s AND scope = %s AND key = %s AND created_at > now() - %s",
        (key.org_id, key.scope, key.key, key.retention),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    if row[0] != key.fingerprint:
        raise IdempotencyKeyReused(key.key)
    return StoredResponse(status_code=int(row[1]), body=row[2])


async def lookup_in(pool: AsyncConnectionPool, key: IdempotencyKey) -> StoredResponse | None:
    async with pool.connection() as conn:
        return await lookup(conn, key)


async def remember(
    conn: AsyncConnection[Any], key: IdempotencyKey, status_code: int, body: Any
) -> None:
    """Store the answer in the caller's transaction (an expired row for the key is replaced).

    Raises KeyTaken when a live row for the key exists (a concurrent request won the race).
    """
    cursor = await conn.execute(
        "INSERT INTO idempotency_keys (org_id, scope, key, fingerprint, status_code, response) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (org_id, scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
        "status_code = EXCLUDED.status_code, response = EXCLUDED.response, created_at = now() "
        "WHERE idempotency_keys.created_at <= now() - %s",
        (
            key.org_id,
            key.scope,
            key.key,
            key.fingerprint,
            status_code,
            Jsonb(body),
            key.retention,
        ),
    )
    if cursor.rowcount == 0:
        raise KeyTaken(key.key)


async def forget(pool: AsyncConnectionPool, key: IdempotencyKey) -> None:
    """Drop the key (its request failed after committing, e.g. the workflow did not start), so
    a retry does the work again."""
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE org_id = %s AND scope = %s AND key = %s",
            (key.org_id, key.scope, key.key),
        )


async def prune(pool: AsyncConnectionPool, retention_hours: float) -> int:
    """Delete keys older than the retention window; returns how many."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - %s",
            (timedelta(hours=retention_hours),),
        )
        return cursor.rowcount


def canonical_json(value: Any) -> str:
    """A body's fingerprint input for requests parsed by pydantic (key order does not matter)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
