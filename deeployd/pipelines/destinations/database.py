"""The `database` destination: insert, upsert or update rows of a PostgreSQL table.

Default target is the platform database, confined to the organisation's own schema
(`org_schema(org_id)`, e.g. `pipeline_org_0123abcd`) so a pipeline can never write platform
tables or another organisation's data: the table name is one identifier in that schema, and the
write runs as the organisation's role (`deeployd.tenantdb.org_transaction`), which has rights on
that schema only. `connection: "${secrets.DSN}"` targets any other PostgreSQL database instead
(resolved in the worker and checked by `deeployd.tenantdb.connect_external` before connecting).

`createTable: true` with `columns` (name → type from COLUMN_TYPES) creates the table in the
organisation's schema when the pipeline is created or updated (an upsert's `conflictFields`
become its primary key); a table that already exists is kept as it is.

Rows are built by PostgreSQL itself (`jsonb_populate_recordset(NULL::table, …)`), so JSON
values are cast to the real column types. Upsert (`ON CONFLICT (conflictFields) DO UPDATE`)
makes a redelivered batch idempotent: delivering the same outputs twice leaves the same rows.

Per item: an output with a field the table lacks, or a string PostgreSQL cannot store (NUL, a
lone surrogate), is refused before sending; a value the database refuses (a failed cast, a
constraint) is found by halving the batch. Refused items go to dead letters with the reason;
the rest of the batch is written.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from deeployd import tenantdb
from deeployd.pipelines.destinations.base import (
    ConfigError,
    Delivery,
    DeliveryContext,
    DeliveryError,
    register_destination,
    reject,
    unstorable_reason,
)
from deeployd.pipelines.destinations.webhook import validate_retry_policy
from deeployd.secretstore import SECRET_REF

if TYPE_CHECKING:
    from deeployd.db import Database
    from deeployd.pipelines.transforms import OutItem

OPERATIONS = ("insert", "upsert", "update")
_KEYS = {
    "table",
    "operation",
    "conflictFields",
    "connection",
    "retryPolicy",
    "createTable",
    "columns",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# The column types `createTable` accepts (spelling → the SQL written), each also as an array
# (`text[]`). Only these words ever reach the DDL: no user text is spliced into it.
COLUMN_TYPES: dict[str, str] = {
    "text": "text",
    "varchar": "varchar",
    "smallint": "smallint",
    "integer": "integer",
    "int": "integer",
    "bigint": "bigint",
    "numeric": "numeric",
    "real": "real",
    "double precision": "double precision",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "time": "time",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "interval": "interval",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "jsonb",
    "bytea": "bytea",
    "inet": "inet",
}
MAX_DECLARED_COLUMNS = 200
_COLUMN_TTL_S = 30.0


def org_schema(org_id: str) -> str:
    """The platform-database schema an organisation's pipelines may write to."""
    return tenantdb.org_schema(org_id)


def _split_table(config: dict[str, Any], org_id: str) -> tuple[str, str]:
    table = config["table"]
    if config.get("connection"):
        schema, _, name = table.rpartition(".")
        return schema or "public", name
    return org_schema(org_id), table


async def table_columns(conn: psycopg.AsyncConnection[Any], schema: str, table: str) -> set[str]:
    # The catalog, not information_schema: a table the role may not write yet still shows its
    # columns, and the write answers "permission denied" (which re-applies the grants).
    cursor = await conn.execute(
        "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
        "AND c.relkind IN ('r', 'p', 'v', 'f') AND a.attnum > 0 AND NOT a.attisdropped",
        (schema, table),
    )
    return {row[0] for row in await cursor.fetchall()}


async def unique_column_sets(
    conn: psycopg.AsyncConnection[Any], schema: str, table: str
) -> list[set[str]]:
    cursor = await conn.execute(
        "SELECT array_agg(a.attname::text) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
        "WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indpred IS NULL "
        "GROUP BY i.indexrelid",
        (schema, table),
    )
    return [set(row[0]) for row in await cursor.fetchall()]


async def check_against_table(
    conn: psycopg.AsyncConnection[Any], config: dict[str, Any], org_id: str
) -> None:
    """The create-time check against the real table: it exists, conflictFields are columns,
    and an upsert has a unique index on exactly them. Raises ConfigError."""
    schema, table = _split_table(config, org_id)
    columns = await table_columns(conn, schema, table)
    if not columns:
        raise ConfigError(("config", "table"), f"table {schema}.{table} does not exist")
    fields = config.get("conflictFields") or []
    for index, name in enumerate(fields):
        if name not in columns:
            raise ConfigError(
                ("config", "conflictFields", index), f"{table} has no column {name!r}"
            )
    if config.get("operation", "insert") == "upsert":
        if set(fields) not in await unique_column_sets(conn, schema, table):
            raise ConfigError(
                ("config", "conflictFields"),
                f"{table} has no unique index or primary key on exactly ({', '.join(fields)})",
            )


def column_type_sql(declared: Any) -> str | None:
    """The SQL type for a declared column type (see COLUMN_TYPES), None if it is not allowed."""
    if not isinstance(declared, str) or len(declared) > 40:
        return None
    spelled = " ".join(declared.lower().split())
    array = spelled.endswith("[]")
    base = COLUMN_TYPES.get(spelled[:-2].rstrip() if array else spelled)
    if base is None:
        return None
    return base + "[]" if array else base


def _validate_declared_table(config: dict[str, Any]) -> None:
    create = config.get("createTable", False)
    columns = config.get("columns")
    if not isinstance(create, bool):
        raise ConfigError(("config", "createTable"), "must be true or false")
    if not create:
        if columns is not None:
            raise ConfigError(("config", "columns"), "is only used with createTable: true")
        return
    if config.get("connection"):
        raise ConfigError(
            ("config", "createTable"),
            "creates tables in the platform database only; create the table in your own "
            "database yourself",
        )
    if not isinstance(columns, dict) or not columns:
        raise ConfigError(
            ("config", "columns"),
            'is required with createTable: an object of column name → type, e.g. {"id": "text"}',
        )
    if len(columns) > MAX_DECLARED_COLUMNS:
        raise ConfigError(("config", "columns"), f"at most {MAX_DECLARED_COLUMNS} columns")
    for name, declared in columns.items():
        if not _IDENT.match(name):
            raise ConfigError(("config", "columns", name), "not a column name (letters, digits, _)")
        if column_type_sql(declared) is None:
            raise ConfigError(
                ("config", "columns", name),
                f"unsupported type {declared!r}; one of {', '.join(sorted(COLUMN_TYPES))} "
                "(or any of them with [])",
            )
    for index, name in enumerate(config.get("conflictFields") or []):
        if name not in columns:
            raise ConfigError(
                ("config", "conflictFields", index), f"{name!r} is not one of the declared columns"
            )


async def create_declared_table(
    conn: psycopg.AsyncConnection[Any], config: dict[str, Any], org_id: str
) -> None:
    """`createTable`: create the organisation's schema and the declared table unless it exists;
    an existing table must have every declared column. Raises ConfigError. The config has been
    through `DatabaseDestination.validate`."""
    schema, table = org_schema(org_id), config["table"]
    columns: dict[str, str] = config["columns"]
    definitions = [
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(column_type_sql(declared) or ""))
        for name, declared in columns.items()
    ]
    fields = config.get("conflictFields") or []
    if config.get("operation", "insert") == "upsert":
        # An upsert needs a unique index on exactly conflictFields: the primary key is one.
        definitions.append(
            sql.SQL("PRIMARY KEY ({})").format(
                sql.SQL(", ").join(sql.Identifier(f) for f in fields)
            )
        )
    # Two pipelines declaring the same table at once: one creates it, the other finds it.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"deeployd-ddl:{schema}",))
    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    await conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            sql.Identifier(schema, table), sql.SQL(", ").join(definitions)
        )
    )
    existing = await table_columns(conn, schema, table)
    for name in columns:
        if name not in existing:
            raise ConfigError(
                ("config", "columns", name),
                f"table {schema}.{table} already exists without this column",
            )


class DatabaseDestination:
    type = "database"

    def __init__(self) -> None:
        self._columns: dict[tuple[str, str, str], tuple[float, set[str]]] = {}

    def validate(self, config: dict[str, Any]) -> None:
        for key in config:
            if key not in _KEYS:
                raise ConfigError(("config", key), "unknown field")
        table = config.get("table")
        connection = config.get("connection")
        if connection is not None and (
            not isinstance(connection, str) or not SECRET_REF.fullmatch(connection)
        ):
            raise ConfigError(
                ("config", "connection"), "must be a secret reference like ${secrets.NAME}"
            )
        parts = table.split(".") if isinstance(table, str) else []
        allowed_parts = 2 if connection else 1
        if not parts or len(parts) > allowed_parts or not all(_IDENT.match(p) for p in parts):
            raise ConfigError(
                ("config", "table"),
                "must be a table name (letters, digits, _)"
                + ("" if connection else "; the platform database allows no schema prefix"),
            )
        operation = config.get("operation", "insert")
        if operation not in OPERATIONS:
            raise ConfigError(("config", "operation"), f"must be one of {', '.join(OPERATIONS)}")
        fields = config.get("conflictFields")
        if operation in ("upsert", "update") and not fields:
            raise ConfigError(("config", "conflictFields"), f"is required for {operation}")
        if fields is not None:
            if not isinstance(fields, list):
                raise ConfigError(("config", "conflictFields"), "must be a list of column names")
            for index, name in enumerate(fields):
                if not isinstance(name, str) or not _IDENT.match(name):
                    raise ConfigError(("config", "conflictFields", index), "not a column name")
        _validate_declared_table(config)
        validate_retry_policy(config)

    async def check(self, db: Database, org_id: str, config: dict[str, Any]) -> None:
        """At create/update time, a table in the platform database is checked (and created
        when `createTable` asks); other databases are checked in the worker."""
        if config.get("connection"):
            return
        async with db.pool.connection() as conn:
            if config.get("createTable"):
                await create_declared_table(conn, config, org_id)
            await check_against_table(conn, config, org_id)

    async def deliver(self, ctx: DeliveryContext, delivery: Delivery) -> None:
        if not delivery.items:
            return
        config = ctx.config
        try:
            if config.get("connection"):
                dsn = config["connection"]
                async with tenantdb.connect_external(
                    dsn,
                    allow_private=ctx.settings.allow_private_urls,
                    platform_url=ctx.settings.database_url,
                    platform_pool=ctx.db.pool,
                ) as conn:
                    await self._write(conn, ctx, dsn, delivery)
            else:
                async with ctx.db.pool.connection() as conn:
                    try:
                        async with tenantdb.org_transaction(conn, ctx.org_id):
                            await self._write(conn, ctx, "platform", delivery)
                    except psycopg.errors.InsufficientPrivilege:
                        # A table created by another role since the grants: grant and retry once.
                        tenantdb.forget_org_role(ctx.org_id)
                        async with tenantdb.org_transaction(conn, ctx.org_id):
                            await self._write(conn, ctx, "platform", delivery)
        except tenantdb.UnsafeDSNError as exc:
            raise DeliveryError(f"connection refused: {exc}", retryable=False) from None
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            raise DeliveryError(f"database rejected the rows: {exc}", retryable=False) from None
        except psycopg.Error as exc:
            raise DeliveryError(f"database unavailable: {exc}") from None

    async def _columns_of(
        self, conn: psycopg.AsyncConnection[Any], key: str, schema: str, table: str
    ) -> set[str]:
        cached = self._columns.get((key, schema, table))
        if cached and time.monotonic() - cached[0] < _COLUMN_TTL_S:
            return cached[1]
        columns = await table_columns(conn, schema, table)
        self._columns[(key, schema, table)] = (time.monotonic(), columns)
        return columns

    async def _write(
        self, conn: psycopg.AsyncConnection[Any], ctx: DeliveryContext, key: str, delivery: Delivery
    ) -> None:
        config = ctx.config
        schema, table = _split_table(config, ctx.org_id)
        columns = await self._columns_of(conn, key, schema, table)
        if not columns:
            raise DeliveryError(f"table {schema}.{table} does not exist", retryable=False)
        operation = config.get("operation", "insert")
        fields: list[str] = list(config.get("conflictFields") or [])
        # Items the table cannot take are set aside before anything is sent, so one bad item
        # never holds up the others of its batch.
        batch: list[tuple[OutItem, dict[str, Any]]] = []
        for item in delivery.items:
            row = item.value
            unknown = sorted(n for n in row if n not in columns)
            why = (
                f"{table} has no column(s) {', '.join(unknown)}"
                if unknown
                else unstorable_reason(row)
            )
            if why is not None:
                reject(ctx, delivery, item, why)
            else:
                batch.append((item, row))
        if operation != "insert":
            # One statement cannot touch a row twice: keep the latest output per key.
            latest: dict[tuple[Any, ...], tuple[OutItem, dict[str, Any]]] = {}
            for item, row in batch:
                latest[tuple(json.dumps(row.get(f), default=str) for f in fields)] = (item, row)
            batch = list(latest.values())
        if not batch:
            return
        try:  # the common case: one statement (a savepoint inside the org's transaction)
            async with conn.transaction():
                await conn.execute(
                    _statement(schema, table, operation, fields, batch), (_rows(batch),)
                )
        except (psycopg.DataError, psycopg.IntegrityError):
            # Nothing of it was written (the savepoint rolled back, the role stays set): now
            # find the refused rows.
            await self._write_rows(conn, schema, table, operation, fields, batch, ctx, delivery)

    async def _write_rows(
        self,
        conn: psycopg.AsyncConnection[Any],
        schema: str,
        table: str,
        operation: str,
        fields: list[str],
        batch: list[tuple[OutItem, dict[str, Any]]],
        ctx: DeliveryContext,
        delivery: Delivery,
    ) -> None:
        """One statement for the whole batch; when the database refuses a value (a type it cannot
        cast, a constraint), halve the batch until the refused rows are found (log2(n) extra
        statements per bad row), so every other row is still written."""
        statement = _statement(schema, table, operation, fields, batch)
        try:
            async with conn.transaction():  # each part commits (or fails) on its own
                await conn.execute(statement, (_rows(batch),))
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if len(batch) == 1:
                reject(ctx, delivery, batch[0][0], f"database rejected the row: {exc}")
                return
            half = len(batch) // 2
            for part in (batch[:half], batch[half:]):
                await self._write_rows(conn, schema, table, operation, fields, part, ctx, delivery)


def _rows(batch: list[tuple[OutItem, dict[str, Any]]]) -> str:
    return json.dumps([row for _, row in batch], separators=(",", ":"), default=str)


def _statement(
    schema: str,
    table: str,
    operation: str,
    fields: list[str],
    batch: list[tuple[OutItem, dict[str, Any]]],
) -> sql.Composed:
    names: list[str] = []
    for _, row in batch:
        for name in row:
            if name not in names:
                names.append(name)
    target = sql.Identifier(schema, table)
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    if operation == "update":
        updates = [n for n in names if n not in fields] or names
        return sql.SQL(
            "UPDATE {t} AS t SET {sets} FROM jsonb_populate_recordset(NULL::{t}, %s::jsonb) "
            "AS v WHERE {match}"
        ).format(
            t=target,
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = v.{c}").format(c=sql.Identifier(n)) for n in updates
            ),
            match=sql.SQL(" AND ").join(
                sql.SQL("t.{c} = v.{c}").format(c=sql.Identifier(f)) for f in fields
            ),
        )
    statement = sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM jsonb_populate_recordset(NULL::{t}, %s::jsonb)"
    ).format(t=target, cols=cols)
    if operation == "upsert":
        updates = [n for n in names if n not in fields]
        conflict = sql.SQL(", ").join(sql.Identifier(f) for f in fields)
        if updates:
            statement += sql.SQL(" ON CONFLICT ({k}) DO UPDATE SET {sets}").format(
                k=conflict,
                sets=sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(n)) for n in updates
                ),
            )
        else:
            statement += sql.SQL(" ON CONFLICT ({k}) DO NOTHING").format(k=conflict)
    return statement


register_destination(DatabaseDestination())
