"""The `database_change` source: real change data capture from a PostgreSQL table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from temporalio.client import Client as TemporalClient

from deeployd.services import Services
from tests.conftest import Org, RunningApi
from tests.fakes import serve
from tests.fakes.slack import SlackFake
from tests.fakes.sources import create_pipeline, items, running_router, sink_destination
from tests.pipeline_helpers import auth, create_table, eventually, query


@pytest.fixture
async def sink() -> AsyncIterator[str]:
    async with serve(SlackFake().app) as url:
        yield url


async def triggers_on(settings, schema: str, table: str) -> list[str]:
    rows = await query(
        settings,
        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND NOT t.tgisinternal ORDER BY 1",
        (schema, table),
    )
    return [r[0] for r in rows]


async def test_inserts_updates_and_deletes_become_items_with_before_and_after(
    api: RunningApi,
    org: Org,
    worker: Services,
    sink: str,
    settings,
    temporal_client: TemporalClient,
) -> None:
    schema = await create_table(
        settings, org.id, "CREATE TABLE {schema}.orders (id int PRIMARY KEY, item text, qty int)"
    )
    async with (
        running_router(temporal_client, settings, worker),
        httpx.AsyncClient(base_url=api.url) as http,
    ):
        every = await create_pipeline(
            http,
            org.admin_key,
            {"type": "database_change", "table": "orders"},
            sink_destination(sink),
        )
        deletes = await create_pipeline(
            http,
            org.admin_key,
            {"type": "database_change", "table": "orders", "operations": ["delete"]},
            sink_destination(sink),
        )
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            await conn.execute(
                f'INSERT INTO "{schema}".orders VALUES (1, %s, 2), (2, %s, 1)', ("tea", "cake")
            )
            await conn.commit()
            await conn.execute(f'UPDATE "{schema}".orders SET qty = 5 WHERE id = 1')
            await conn.commit()
            await conn.execute(f'INSERT INTO "{schema}".orders VALUES (3, %s, 9)', ("never",))
            await conn.rollback()  # a rolled-back change leaves no trace
            await conn.execute(f'DELETE FROM "{schema}".orders WHERE id = 2')
            await conn.commit()

        log = await eventually(lambda: items(settings, every), lambda v: len(v) >= 4)
        assert [(i["op"], i["table"]) for i in log] == [
            ("insert", "orders"),
            ("insert", "orders"),
            ("update", "orders"),
            ("delete", "orders"),
        ]
        assert log[0]["before"] is None and log[0]["after"] == {"id": 1, "item": "tea", "qty": 2}
        assert log[2]["before"]["qty"] == 2 and log[2]["after"]["qty"] == 5
        assert log[3]["before"] == {"id": 2, "item": "cake", "qty": 1} and log[3]["after"] is None
        assert all(i["ts"] for i in log)
        only_deletes = await eventually(lambda: items(settings, deletes), lambda v: len(v) >= 1)
        assert [i["op"] for i in only_deletes] == ["delete"]
        # Routed changes are removed from the durable change table.
        pending = await eventually(
            lambda: query(
                settings,
                "SELECT count(*) FROM deeployd_cdc_changes WHERE pipeline_id = ANY(%s)",
                ([every, deletes],),
            ),
            lambda rows: rows[0][0] == 0,
        )
        assert pending[0][0] == 0

        # Deleting a pipeline drops its trigger; the other keeps capturing.
        assert len(await triggers_on(settings, schema, "orders")) == 2
        response = await http.delete(
            f"/api/streaming/pipelines/{every}", headers=auth(org.admin_key)
        )
        assert response.status_code == 204
        assert len(await triggers_on(settings, schema, "orders")) == 1
    assert len(await items(settings, every)) == 0  # its log went with it
    assert len(await items(settings, deletes)) == 1


async def test_a_missing_table_is_a_422_on_source_table(
    api: RunningApi, org: Org, sink: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        response = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "cdc",
                "source": {"type": "database_change", "table": "nope"},
                "destination": sink_destination(sink),
            },
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0].startswith("source.table: table ")
        response = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "cdc",
                "source": {"type": "database_change", "table": "public.secrets"},
                "destination": sink_destination(sink),
            },
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0].startswith("source.table: must be a table name")
        response = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "cdc",
                "source": {"type": "database_change", "table": "t", "operations": ["upsert"]},
                "destination": sink_destination(sink),
            },
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0].startswith("source.operations[0]:")
        response = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "cdc",
                "source": {
                    "type": "database_change",
                    "table": "public.t",
                    "connection": "${secrets.NOT_STORED}",
                },
                "destination": sink_destination(sink),
            },
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == ["source.connection: unknown secret(s): NOT_STORED"]


async def test_a_table_in_another_database_via_a_connection_secret(
    api: RunningApi,
    org: Org,
    worker: Services,
    sink: str,
    settings,
    temporal_client: TemporalClient,
    external_postgres: str,
) -> None:
    # "Another database" is a second PostgreSQL server on loopback TCP, reached through a DSN
    # stored as a secret (the platform's own database is refused, see test_tenant_isolation).
    schema = f"ext_{org.id.split('_')[-1]}"
    async with await psycopg.AsyncConnection.connect(external_postgres, autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'CREATE TABLE "{schema}".things (id int PRIMARY KEY, name text)')
    async with (
        running_router(temporal_client, settings, worker),
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        response = await http.post(
            "/api/secrets", json={"name": "REPLICA_DSN", "value": external_postgres}
        )
        assert response.status_code == 201, response.text
        pipeline_id = await create_pipeline(
            http,
            org.admin_key,
            {
                "type": "database_change",
                "table": f"{schema}.things",
                "operations": ["insert", "update"],
                "connection": "${secrets.REPLICA_DSN}",
            },
            sink_destination(sink),
        )
        async with await psycopg.AsyncConnection.connect(
            external_postgres, autocommit=True
        ) as conn:
            await conn.execute(f"INSERT INTO \"{schema}\".things VALUES (1, 'a')")
            await conn.execute(f"UPDATE \"{schema}\".things SET name = 'b'")
            await conn.execute(f'DELETE FROM "{schema}".things')  # not an operation it wants
        log = await eventually(lambda: items(settings, pipeline_id), lambda v: len(v) >= 2)
        assert [(i["op"], (i["after"] or {}).get("name")) for i in log] == [
            ("insert", "a"),
            ("update", "b"),
        ]
        # Stopping waits for the pipeline to flush (up to 20 s by design).
        response = await http.post(f"/api/streaming/pipelines/{pipeline_id}/stop", timeout=30)
        assert response.status_code == 200, response.text
    async with await psycopg.AsyncConnection.connect(external_postgres, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'things' AND NOT t.tgisinternal",
            (schema,),
        )
        assert await cursor.fetchone() == (0,)


async def test_clean_up_drops_orphaned_triggers_and_undrainable_changes(
    api: RunningApi, org: Org, worker: Services, settings
) -> None:
    from deeployd.pipelines.sources import database_change

    schema = await create_table(
        settings, org.id, "CREATE TABLE {schema}.audit (id int PRIMARY KEY)"
    )
    # A trigger whose pipeline vanished without the stop/delete hooks running.
    ghost = "pl_ghost0000000000"
    await database_change.install_trigger(
        worker, org.id, ghost, {"type": "database_change", "table": "audit"}
    )
    await query(settings, f'INSERT INTO "{schema}".audit VALUES (1), (2)')
    assert await triggers_on(settings, schema, "audit") == [f"deeployd_cdc_{ghost}"]
    triggers, rows = await database_change.clean_up(worker.db.pool, max_age_s=0)
    assert triggers >= 1 and rows >= 2
    assert await triggers_on(settings, schema, "audit") == []
    left = await query(
        settings, "SELECT count(*) FROM deeployd_cdc_changes WHERE pipeline_id = %s", (ghost,)
    )
    assert left[0][0] == 0
