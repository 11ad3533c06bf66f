"""The `database` destination's `createTable`: a declared column list becomes a table in the
organisation's schema when the pipeline is created; bad declarations are 422s naming the path."""

from __future__ import annotations

import re
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

import deeployd
from deeployd.pipelines.destinations.base import ConfigError
from deeployd.pipelines.destinations.database import (
    COLUMN_TYPES,
    DatabaseDestination,
    org_schema,
)
from deeployd.services import Services
from tests.conftest import Org, RunningApi, make_org
from tests.pipeline_helpers import auth, eventually, query

COLUMNS = {"id": "text", "total": "numeric", "tags": "text[]", "seen_at": "timestamptz"}


def destination(**config: Any) -> dict[str, Any]:
    return {"type": "database", "config": {"table": "orders", **config}}


def body(dest: dict[str, Any]) -> dict[str, Any]:
    return {"name": "orders", "source": {"type": "webhook"}, "destination": dest}


async def test_create_table_declares_the_table_and_the_pipeline_writes_it(
    api: RunningApi, org: Org, worker: Services, client: deeployd.Client
) -> None:
    pipeline = await client.streaming.create_pipeline(
        name="orders",
        source={"type": "webhook"},
        destination=destination(
            createTable=True, columns=COLUMNS, operation="upsert", conflictFields=["id"]
        ),
    )
    schema = org_schema(org.id)
    columns = await query(
        api.settings,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'orders' ORDER BY ordinal_position",
        (schema,),
    )
    assert columns == [
        ("id", "text"),
        ("total", "numeric"),
        ("tags", "ARRAY"),
        ("seen_at", "timestamp with time zone"),
    ]
    pid = pipeline["id"]
    await client.streaming.start_pipeline(pid)
    items = [
        {"id": "o1", "total": 10.5, "tags": ["a"], "seen_at": "2026-01-01T00:00:00Z"},
        {"id": "o2", "total": 3, "tags": [], "seen_at": "2026-01-02T00:00:00Z"},
        {"id": "o1", "total": 12, "tags": ["a", "b"], "seen_at": "2026-01-03T00:00:00Z"},
    ]
    await client.streaming.batch(pid, items)
    await eventually(
        lambda: client.streaming.get_pipeline_metrics(pid), lambda m: m["itemsProcessed"] == 3
    )
    rows = await query(
        api.settings, f'SELECT id, total::text, tags FROM "{schema}".orders ORDER BY id'
    )
    assert rows == [("o1", "12", ["a", "b"]), ("o2", "3", [])]  # the primary key made it upsert
    await client.streaming.stop_pipeline(pid)

    # Declaring the same table again keeps it (and its rows); another organisation's schema
    # gets its own table.
    again = await client.streaming.create_pipeline(
        name="orders again",
        source={"type": "webhook"},
        destination=destination(createTable=True, columns={"id": "text"}),
    )
    assert again["id"] != pid
    assert len(await query(api.settings, f'SELECT 1 FROM "{schema}".orders')) == 2
    other = await make_org(api.settings)
    async with httpx.AsyncClient(base_url=api.url, headers=auth(other.admin_key)) as http:
        created = await http.post(
            "/api/streaming/pipelines",
            json=body(destination(createTable=True, columns={"id": "text"})),
        )
        assert created.status_code == 201, created.text
    assert await query(api.settings, f'SELECT 1 FROM "{org_schema(other.id)}".orders') == []


async def test_bad_declarations_are_422s_naming_the_field(api: RunningApi, org: Org) -> None:
    cases = [
        (
            destination(createTable=True, columns={"id": "text; drop table x"}),
            "destination.config.columns.id: unsupported type",
        ),
        (
            destination(createTable=True, columns={"bad name": "text"}),
            "destination.config.columns.bad name: not a column name",
        ),
        (destination(createTable=True), "destination.config.columns: is required"),
        (destination(columns={"id": "text"}), "destination.config.columns: is only used with"),
        (destination(createTable="yes", columns={"id": "text"}), "destination.config.createTable:"),
        (
            destination(
                createTable=True,
                columns={"id": "text"},
                operation="upsert",
                conflictFields=["sku"],
            ),
            "destination.config.conflictFields[0]: 'sku' is not one of the declared columns",
        ),
        (
            destination(
                table="sales.orders",
                connection="${secrets.DSN}",
                createTable=True,
                columns={"id": "text"},
            ),
            "destination.config.createTable: creates tables in the platform database only",
        ),
    ]
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        for dest, expected in cases:
            response = await http.post("/api/streaming/pipelines", json=body(dest))
            assert response.status_code == 422, (expected, response.text)
            errors = response.json()["errors"]
            assert any(e.startswith(expected) for e in errors), (expected, errors)
        # An existing table must have the declared columns; nothing is created on a 422.
        first = await http.post(
            "/api/streaming/pipelines",
            json=body(destination(table="events_in", createTable=True, columns={"id": "text"})),
        )
        assert first.status_code == 201, first.text
        widened = await http.post(
            "/api/streaming/pipelines",
            json=body(
                destination(table="events_in", createTable=True, columns={"id": "text", "n": "int"})
            ),
        )
        assert widened.status_code == 422
        assert widened.json()["errors"] == [
            f"destination.config.columns.n: table {org_schema(org.id)}.events_in already exists "
            "without this column"
        ]
        no_key = await http.post(
            "/api/streaming/pipelines",
            json=body(
                destination(
                    table="events_in",
                    createTable=True,
                    columns={"id": "text"},
                    operation="upsert",
                    conflictFields=["id"],
                )
            ),
        )
        assert no_key.status_code == 422  # the kept table has no unique index on id
        assert no_key.json()["errors"][0].startswith("destination.config.conflictFields:")
        rejected = await http.post(
            "/api/streaming/pipelines",
            json=body(destination(table="never_made", createTable=True, columns={"id": "nope"})),
        )
        assert rejected.status_code == 422
    tables = await query(
        api.settings,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
        (org_schema(org.id),),
    )
    assert ("never_made",) not in tables


identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
names = st.one_of(identifiers, st.text(max_size=12))
types = st.one_of(
    st.sampled_from(sorted(COLUMN_TYPES)),
    st.sampled_from(sorted(COLUMN_TYPES)).map(lambda t: t.upper() + "[]"),
    st.text(max_size=20),
    st.integers(),
    st.none(),
)


@given(st.dictionaries(names, types, max_size=6))
def test_only_identifiers_and_allow_listed_types_are_accepted(columns: dict[str, Any]) -> None:
    config = {"table": "t", "createTable": True, "columns": columns}
    valid = bool(columns) and all(_ident(name) and _allowed(kind) for name, kind in columns.items())
    try:
        DatabaseDestination().validate(config)
    except ConfigError as exc:
        assert not valid, exc
        assert exc.loc[:2] == ("config", "columns")
    else:
        assert valid


def _ident(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name) is not None


def _allowed(kind: Any) -> bool:
    return isinstance(kind, str) and kind.lower().removesuffix("[]") in COLUMN_TYPES
