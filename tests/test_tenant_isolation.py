"""Tenant isolation against a real stack (loopback only): the operator's provider keys never
reach a tenant's URL, a tenant's database access can never reach the platform's own database
or another organisation's schema, and revoking a key ends its open streams."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest
from psycopg.conninfo import conninfo_to_dict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from api.sse import UNAUTHORIZED_FRAME
from deeployd import tenantdb
from deeployd.db import Database
from deeployd.devstack import free_port
from deeployd.ids import new_id
from deeployd.pipelines.sources import database_change
from deeployd.sdk.sse import parse_sse
from deeployd.services import Services
from deeployd.settings import Settings
from deeployd.voice.providers import OpenAISpeech, ProviderError
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    scripted_agent,
    send_streaming,
)
from tests.conftest import Org, RunningApi, make_org
from tests.fakes import serve
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_speech_server import FakeSpeech
from tests.pipeline_helpers import create_table, eventually, query
from tests.test_a2a_protocol import a2a_client, describe

OPERATOR_KEY = "sk-operator-platform-key"


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """The platform holds an OpenAI key (as OPENAI_API_KEY would set it); private URLs are
    allowed, as under `deeployd dev`."""
    return base_settings.model_copy(
        update={"task_queue": f"test-{uuid.uuid4().hex[:12]}", "openai_api_key": OPERATOR_KEY}
    )


# --- the operator's provider keys ----------------------------------------------------------


async def test_the_operator_key_never_reaches_a_tenant_model_endpoint(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with (
        FakeOpenAI(api_key=OPERATOR_KEY) as fake,
        httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http,
    ):
        agent = {"name": "mine", "provider": "openai", "model": "gpt-4o-mini", "baseUrl": fake.url}
        refused = await http.post("/api/agents", json=agent)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0].startswith("apiKey: an agent with a custom baseUrl")
        # Removing the key of an agent that has one is refused the same way.
        await http.post("/api/secrets", json={"name": "OWN_KEY", "value": "sk-tenant"})
        own = await create_agent(http, org, {**agent, "apiKey": "${secrets.OWN_KEY}"})
        patched = await http.patch(f"/api/agents/{own['id']}", json={"apiKey": None})
        assert patched.status_code == 422, patched.text
        assert patched.json()["errors"][0].startswith("apiKey:")
        # The provider's own endpoint may use the platform key.
        official = {**agent, "baseUrl": "https://api.openai.com/v1/"}
        assert (await http.post("/api/agents", json=official)).status_code == 201

        # An agent stored before the rule (no key, the tenant's URL): the run fails, nothing sent.
        legacy_id = new_id("agt")
        await query(
            api.settings,
            "INSERT INTO agents SELECT (jsonb_populate_record(NULL::agents, to_jsonb(a) "
            "|| jsonb_build_object('id', %s::text, 'api_key', NULL))).* FROM agents a "
            "WHERE a.id = %s",
            (legacy_id, own["id"]),
        )
        conversation = await create_conversation(http, org, legacy_id)
        events = await send_streaming(http, org, conversation, "hello")
        assert events[-1][1]["type"] == "error" and events[-1][1]["code"] == "auth", events[-1]
    assert fake.requests == []
    # And the tenant's own key does reach the tenant's own server.
    async with (
        FakeOpenAI(api_key="sk-tenant") as own_fake,
        httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http,
    ):
        own = await create_agent(
            http, org, {**agent, "baseUrl": own_fake.url, "apiKey": "${secrets.OWN_KEY}"}
        )
        conversation = await create_conversation(http, org, own["id"])
        events = await send_streaming(http, org, conversation, "hello")
        assert events[-1][1]["type"] == "done", events[-1]
    assert [r.headers["authorization"] for r in own_fake.requests] == ["Bearer sk-tenant"]
    assert all(OPERATOR_KEY not in json.dumps(r.headers) for r in own_fake.requests)


async def test_a_model_endpoint_cannot_redirect_the_worker_elsewhere(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with FakeOpenAI(api_key="sk-tenant") as target:

        async def redirect(request: Request) -> Response:
            return RedirectResponse(f"{target.url}/chat/completions", status_code=307)

        app = Starlette(routes=[Route("/v1/chat/completions", redirect, methods=["POST"])])
        async with (
            serve(app) as redirector,
            httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http,
        ):
            await http.post("/api/secrets", json={"name": "OWN_KEY", "value": "sk-tenant"})
            agent = await create_agent(
                http,
                org,
                {
                    "name": "redirected",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "baseUrl": f"{redirector}/v1",
                    "apiKey": "${secrets.OWN_KEY}",
                },
            )
            conversation = await create_conversation(http, org, agent["id"])
            events = await send_streaming(http, org, conversation, "hello")
            assert events[-1][1]["type"] == "error", events[-1]
    assert target.requests == []


async def test_the_platform_openai_key_goes_to_openai_speech_only() -> None:
    fake = FakeSpeech(api_key=OPERATOR_KEY)
    async with serve(fake.app) as url, httpx.AsyncClient() as http:
        settings = Settings(
            allow_private_urls=True, openai_api_key=OPERATOR_KEY, openai_tts_base_url=f"{url}/v1"
        )
        with pytest.raises(ProviderError, match="401"):
            await OpenAISpeech(settings).open_stream(
                http, text="hello", voice="alloy", response_format="mp3", speed=1.0
            )
    assert fake.requests == []  # the fake only records requests carrying its key


# --- the platform database -----------------------------------------------------------------


def _key_row(victim: Org, plain: str) -> dict[str, Any]:
    return {
        "id": new_id("key"),
        "org_id": victim.id,
        "name": "planted",
        "prefix": plain[:10],
        "key_hash": hashlib.sha256(plain.encode()).hexdigest(),
        "scopes": ["admin"],
        "created_at": "2026-01-01T00:00:00Z",
    }


async def _victim_keys(settings: Settings, victim: Org) -> list[tuple[Any, ...]]:
    return await query(
        settings, "SELECT id, key_hash FROM api_keys WHERE org_id = %s ORDER BY id", (victim.id,)
    )


@contextlib.asynccontextmanager
async def socket_forwarder(settings: Settings) -> AsyncIterator[int]:
    """A loopback TCP port that forwards to the platform database's unix socket: the platform
    database under another name."""
    info = conninfo_to_dict(settings.require_database_url())
    path = str(Path(str(info["host"])) / f".s.PGSQL.{info.get('port') or 5432}")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(path)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_the_takeover_sequence_is_refused_and_the_victim_keys_are_unchanged(
    api: RunningApi, org: Org, worker: Services, settings: Settings
) -> None:
    victim = await make_org(settings)
    before = await _victim_keys(settings, victim)
    planted = "dk_planted-by-another-organisation"
    async with (
        socket_forwarder(settings) as port,
        httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http,
    ):
        pipeline = {
            "name": "takeover",
            "source": {"type": "webhook"},
            "destination": {
                "type": "database",
                "config": {
                    "table": "public.api_keys",
                    "connection": "${secrets.PLATFORM_DSN}",
                    "retryPolicy": {"maxRetries": 0, "backoffMs": 10},
                },
            },
        }
        # 1. The platform's DSN itself (its unix socket): refused when the pipeline is created.
        secret = {"name": "PLATFORM_DSN", "value": settings.require_database_url()}
        assert (await http.post("/api/secrets", json=secret)).status_code == 201
        refused = await http.post("/api/streaming/pipelines", json=pipeline)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"] == [
            "destination.config.connection: refused: unix-socket connections are not allowed; "
            "name a TCP host"
        ]
        # 2. The platform database under another name (a TCP port forwarding to it): the check
        # cannot tell before connecting; once connected, the worker recognises its own database
        # and writes nothing.
        secret = {
            "name": "PLATFORM_DSN",
            "value": f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
        }
        assert (await http.post("/api/secrets", json=secret)).status_code == 201  # replaces it
        created = await http.post("/api/streaming/pipelines", json=pipeline)
        assert created.status_code == 201, created.text
        base = f"/api/streaming/pipelines/{created.json()['id']}"
        assert (await http.post(f"{base}/start")).status_code == 200
        row = _key_row(victim, planted)
        assert (await http.post(f"{base}/process", json=row)).status_code == 202
        dead = await eventually(
            lambda: http.get(f"{base}/dead-letters"), lambda r: len(r.json()["items"]) == 1
        )
        assert "platform's own database" in dead.json()["items"][0]["error"]
        assert (
            await http.get("/api/me", headers={"Authorization": f"Bearer {planted}"})
        ).status_code == 401
    assert await _victim_keys(settings, victim) == before


async def test_a_table_outside_the_org_schema_is_refused(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        for table, message in (
            ("public.api_keys", "the platform database allows no schema prefix"),
            ('"../x"', "must be a table name"),
            ("../x", "must be a table name"),
            ('api_keys"; DROP TABLE api_keys; --', "must be a table name"),
            ("api_keys", f"table {tenantdb.org_schema(org.id)}.api_keys does not exist"),
        ):
            response = await http.post(
                "/api/streaming/pipelines",
                json={
                    "name": "confined",
                    "source": {"type": "webhook"},
                    "destination": {"type": "database", "config": {"table": table}},
                },
            )
            assert response.status_code == 422, response.text
            [error] = response.json()["errors"]
            assert error.startswith("destination.config.table:") and message in error, error


async def test_the_org_role_reaches_its_own_schema_only(
    api: RunningApi, org: Org, worker: Services, settings: Settings
) -> None:
    other = await make_org(settings)
    mine = await create_table(settings, org.id, "CREATE TABLE {schema}.notes (id int PRIMARY KEY)")
    theirs = await create_table(
        settings, other.id, "CREATE TABLE {schema}.notes (id int PRIMARY KEY)"
    )
    # Another pipeline captures the table: its trigger still records writes made by the role.
    await database_change.install_trigger(
        worker, org.id, "pl_rolecheck0000", {"type": "database_change", "table": "notes"}
    )
    db = Database(settings.require_database_url(), pool_size=1)
    await db.open()
    try:
        async with db.pool.connection() as conn:
            async with tenantdb.org_transaction(conn, org.id):
                await conn.execute("INSERT INTO notes VALUES (1)")  # search_path: its schema
                await conn.execute(f'INSERT INTO "{mine}".notes VALUES (2)')
            for statement in (
                "SELECT count(*) FROM public.api_keys",
                "INSERT INTO public.organizations (id, name) VALUES ('org_x', 'x')",
                f'INSERT INTO "{theirs}".notes VALUES (1)',
                f'SELECT * FROM "{theirs}".notes',
                "CREATE TABLE public.planted (id int)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    async with tenantdb.org_transaction(conn, org.id):
                        await conn.execute(statement)  # type: ignore[arg-type]
    finally:
        await db.close()
    assert await query(settings, f'SELECT id FROM "{mine}".notes ORDER BY id') == [(1,), (2,)]
    captured = await query(
        settings,
        "SELECT count(*) FROM deeployd_cdc_changes WHERE pipeline_id = 'pl_rolecheck0000'",
    )
    assert captured == [(2,)]
    await database_change.remove_trigger(
        worker, org.id, "pl_rolecheck0000", {"type": "database_change", "table": "notes"}
    )


@contextlib.asynccontextmanager
async def counting_listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback TCP listener that counts connections and closes them at once."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()


async def test_connection_errors_do_not_reveal_whether_a_port_answers(
    api: RunningApi, org: Org
) -> None:
    async with (
        counting_listener() as (open_port, accepted),
        httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http,
    ):
        closed_port = free_port()  # nothing listens there
        errors = []
        for name, port in (("OPEN", open_port), ("CLOSED", closed_port)):
            secret = {"name": name, "value": f"host=127.0.0.1 port={port} user=u dbname=d"}
            assert (await http.post("/api/secrets", json=secret)).status_code == 201
            response = await http.post(
                "/api/streaming/pipelines",
                json={
                    "name": "probe",
                    "source": {
                        "type": "database_change",
                        "table": "public.t",
                        "connection": f"${{secrets.{name}}}",
                    },
                    "destination": {"type": "webhook", "config": {"url": "${secrets.HOOK}"}},
                },
            )
            assert response.status_code == 422, response.text
            errors.append(response.json()["errors"])
        assert accepted  # the open port was really tried
    assert errors[0] == errors[1] == [f"source.connection: {tenantdb.CONNECT_FAILED}"]


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("host=/tmp user=postgres", "unix-socket"),
        ("host=@abstract user=postgres", "unix-socket"),
        ("user=postgres dbname=postgres", "unix-socket"),
        ("postgresql:///postgres", "unix-socket"),
        ("postgresql://db.example.com/x?host=/var/run/postgresql", "unix-socket"),
        ("host=127.0.0.1,/tmp port=5432", "unix-socket"),
        ("host=127.0.0.1 service=platform", "'service' parameter"),
        ("host=127.0.0.1 passfile=/root/.pgpass", "'passfile' parameter"),
        ("host=127.0.0.1 sslkey=/etc/ssl/private/key.pem", "'sslkey' parameter"),
        ("postgresql://127.0.0.1/x?sslrootcert=/etc/x", "'sslrootcert' parameter"),
        ("host=127.0.0.1 dbname='host=/tmp'", "dbname"),
        ("host=127.0.0.1 require_auth=gss", "GSSAPI"),
        ("not a dsn at all", "not a valid PostgreSQL connection string"),
    ],
)
async def test_dsns_that_reach_local_sockets_or_files_are_refused(dsn: str, message: str) -> None:
    with pytest.raises(tenantdb.UnsafeDSNError, match=message) as refused:
        await tenantdb.check_dsn(dsn, allow_private=True, platform_url=None)
    assert dsn not in str(refused.value)


async def test_a_dsn_naming_the_platform_address_is_refused() -> None:
    platform = "host=localhost port=6543 user=app dbname=app"
    for dsn in (
        "host=127.0.0.1 port=6543 user=x",
        "host=localhost port=6543",
        "host=10.1.1.1 hostaddr=127.0.0.1 port=6543",
        "postgresql://[::ffff:127.0.0.1]:6543/other",
    ):
        with pytest.raises(tenantdb.UnsafeDSNError, match="platform's own database"):
            await tenantdb.check_dsn(dsn, allow_private=True, platform_url=platform)
    # Another port of the same host is another server.
    checked = await tenantdb.check_dsn(
        "host=localhost port=6544 user=x", allow_private=True, platform_url=platform
    )
    assert conninfo_to_dict(checked)["hostaddr"] in ("127.0.0.1", "::1")


# --- revoked keys and open streams ---------------------------------------------------------


@pytest.mark.parametrize("busy", [True, False], ids=["busy stream", "idle stream"])
async def test_revoking_a_key_ends_its_open_stream(
    api: RunningApi, org: Org, worker: Services, busy: bool
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        created = (await http.post("/api/keys", json={"name": "viewer", "scopes": ["read"]})).json()
        stream = f"revoke-{uuid.uuid4().hex[:8]}"
        frames: list[tuple[str | None, dict[str, Any]]] = []
        async with http.stream(
            "GET",
            "/api/events/stream",
            params={"streams": stream, "access_token": created["key"]},
            headers={"Authorization": ""},
            timeout=httpx.Timeout(30),
        ) as response:
            assert response.status_code == 200

            async def read() -> None:
                async for event_id, data, _retry in parse_sse(response.aiter_lines()):
                    if data is not None:
                        frames.append((event_id or None, json.loads(data)))
                        if len(frames) == 1:
                            revoked = await http.delete(f"/api/keys/{created['id']}")
                            assert revoked.status_code == 204

            async def keep_publishing() -> None:
                n = 0
                while True:
                    await worker.publisher.publish(org.id, stream, "tick", {"n": n})
                    n += 1
                    if not busy:
                        return  # one event, then silence: the stream waits when revoked
                    await asyncio.sleep(0.05)

            publisher = asyncio.create_task(keep_publishing())
            try:
                await asyncio.wait_for(read(), timeout=30)  # returns when the server closes
            finally:
                publisher.cancel()
    assert frames[-1] == (None, UNAUTHORIZED_FRAME)
    assert all(data["type"] == "tick" and event_id for event_id, data in frames[:-1])


async def test_revoking_a_key_ends_its_open_a2a_stream(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        # A long answer: the task is still working when the key is revoked.
        script = [{"text": " ".join(f"word{i}" for i in range(300))}]
        agent = await create_agent(http, org, scripted_agent(script, token_delay_ms=100))
        created = (await http.post("/api/keys", json={"name": "a2a", "scopes": ["write"]})).json()
        seen: list[tuple[str, Any]] = []
        request = SendMessageRequest(
            message=Message(
                message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text="go")]
            )
        )
        async with a2a_client(api.url, created["key"], agent["id"]) as client:
            with pytest.raises(Exception, match="revoked"):
                async for response in client.send_message(request):
                    seen.append(describe(response))
                    if len(seen) == 1:
                        revoked = await http.delete(f"/api/keys/{created['id']}")
                        assert revoked.status_code == 204
    assert seen and ("status", "completed") not in seen
