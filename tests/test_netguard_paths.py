"""The address guard on every outbound path, with private URLs disallowed: every IPv6 embedding
of a loopback, private or metadata IPv4 address is refused (table-driven, one test per path)."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from a2a.types.a2a_pb2 import (
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskPushNotificationConfig,
)
from hypothesis import given
from hypothesis import strategies as st

import deeployd.a2a.tools  # noqa: F401  (registers call_agent)
from deeployd import netguard, tenantdb
from deeployd.agents.tools import ToolContext, ToolError, run_tool
from deeployd.pipelines.destinations import (
    Delivery,
    DeliveryContext,
    DeliveryError,
    get_destination,
)
from deeployd.pipelines.transforms import OutItem
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
from tests.conftest import Org, RunningApi
from tests.test_a2a_protocol import a2a_client

# Every IPv6 form of a non-public IPv4 address the guard must see through.
FORMS = {
    "IPv4-compatible loopback": "::7f00:1",
    "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
    "NAT64 loopback": "64:ff9b::7f00:1",
    "NAT64 metadata": "64:ff9b::a9fe:a9fe",
    "NAT64 private": "64:ff9b::a00:1",
    "NAT64 local-use prefix": "64:ff9b:1::808:808",
    "6to4 loopback": "2002:7f00:1::",
    "6to4 metadata": "2002:a9fe:a9fe::",
    "Teredo, loopback client": "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "Teredo, private server": "2001:0:a00:1:8000:63bf:f7f7:f7f7",
}


def url(form: str, path: str = "/") -> str:
    return f"http://[{form}]:8080{path}"


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """This module's API and worker refuse private addresses (the production default)."""
    return base_settings.model_copy(
        update={"task_queue": f"test-{uuid.uuid4().hex[:12]}", "allow_private_urls": False}
    )


def strict() -> Settings:
    return Settings(allow_private_urls=False)


def tool_context() -> ToolContext:
    async def publish(event_type: str, data: dict[str, Any]) -> None:
        return None

    services = SimpleNamespace(settings=strict())
    return ToolContext("org_x", "run_x", "conv_x", "agent_x", services, publish)  # type: ignore[arg-type]


def test_every_form_is_refused_by_the_address_check() -> None:
    for name, form in FORMS.items():
        assert not netguard.is_public_address(form), name


def _embeddings(v4: ipaddress.IPv4Address) -> list[str]:
    n = int(v4)
    return [
        f"::ffff:{v4}",
        str(ipaddress.IPv6Address(n)),
        str(ipaddress.IPv6Address((0x64FF9B << 96) | n)),
        str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80))),
        # Teredo: a public server, the client obfuscated (bits inverted).
        str(ipaddress.IPv6Address((0x20010000 << 96) | (0x4136E378 << 64) | (n ^ 0xFFFFFFFF))),
    ]


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_an_embedded_address_is_judged_as_the_ipv4_address_it_carries(n: int) -> None:
    v4 = ipaddress.IPv4Address(n)
    public = netguard.is_public_address(v4)
    for form in _embeddings(v4):
        assert netguard.is_public_address(form) == public, form


async def test_webhook_destination() -> None:
    for name, form in FORMS.items():
        with pytest.raises(DeliveryError, match="non-public"):
            await _deliver("webhook", {"url": url(form, "/hook")})
        assert name


async def test_analytics_destination_base_url() -> None:
    for form in FORMS.values():
        config = {"provider": "segment", "writeKey": "k", "baseUrl": url(form)}
        with pytest.raises(DeliveryError, match="non-public"):
            await _deliver("analytics", config)


async def test_notification_destination() -> None:
    for form in FORMS.values():
        with pytest.raises(DeliveryError, match="non-public"):
            await _deliver("notification", {"channel": "webhook", "url": url(form, "/n")})
        with pytest.raises(DeliveryError, match="non-public"):
            await _deliver("notification", {"channel": "slack", "webhook": url(form, "/s")})


async def _deliver(kind: str, config: dict[str, Any], db: Any = None) -> None:
    item = OutItem(value={"event": "x"}, first_offset=1, last_offset=1, ingest_ms=1)
    async with httpx.AsyncClient() as http:
        ctx = DeliveryContext(
            org_id="org_test",
            pipeline_id="pl_guard",
            config=config,
            http=http,
            settings=strict(),
            db=db,
        )
        await get_destination(kind).deliver(ctx, Delivery(items=[item]))


async def test_webhook_destination_at_creation(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        for form in FORMS.values():
            response = await http.post(
                "/api/streaming/pipelines",
                json={
                    "name": "hook",
                    "source": {"type": "webhook"},
                    "destination": {"type": "webhook", "config": {"url": url(form, "/hook")}},
                },
            )
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0].startswith("destination.config.url:")


async def test_http_request_tool() -> None:
    for form in FORMS.values():
        with pytest.raises(ToolError, match="non-public"):
            await run_tool("http_request", {"url": url(form, "/x")}, tool_context())


async def test_http_request_tool_checks_every_redirect_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first hop is a public address, reached through a local HTTP proxy (httpx honours
    HTTP_PROXY) that answers with a redirect to an embedded private address: the tool refuses
    the second hop, which would otherwise have gone through the same proxy."""
    requests: list[str] = []
    location = {"value": ""}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        requests.append(head.split(b"\r\n", 1)[0].decode())
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: "
            + location["value"].encode()
            + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    try:
        for form in FORMS.values():
            location["value"] = url(form, "/second")
            before = len(requests)
            with pytest.raises(ToolError, match="non-public"):
                await run_tool("http_request", {"url": "http://8.8.8.8/first"}, tool_context())
            assert requests[before:] == ["GET http://8.8.8.8/first HTTP/1.1"]
    finally:
        proxy.close()


async def test_call_agent_tool() -> None:
    for form in FORMS.values():
        with pytest.raises(ToolError, match="agentUrl refused"):
            await run_tool(
                "call_agent", {"agentUrl": url(form), "message": "hello"}, tool_context()
            )


async def test_voice_provider_base_url() -> None:
    for form in FORMS.values():
        speech = OpenAISpeech(
            Settings(allow_private_urls=False, openai_tts_base_url=url(form, "/v1"))
        )
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError, match="refused"):
                await speech.open_stream(
                    http, text="hi", voice="alloy", response_format="mp3", speed=1.0
                )


async def test_agent_base_url(api: RunningApi, org: Org, worker: Services) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        secret = {"name": "MODEL_KEY", "value": "sk-tenant"}
        assert (await http.post("/api/secrets", json=secret)).status_code == 201
        for form in FORMS.values():
            agent = await create_agent(
                http,
                org,
                {
                    "name": "guarded",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "baseUrl": url(form, "/v1"),
                    "apiKey": "${secrets.MODEL_KEY}",
                },
            )
            conversation = await create_conversation(http, org, agent["id"])
            events = await send_streaming(http, org, conversation, "hi")
            assert events[-1][1]["type"] == "error", events
            assert events[-1][1]["code"] == "unsafe_url", events[-1]


async def test_a2a_push_config(api: RunningApi, org: Org, worker: Services) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "never pushed"}]))
    async with a2a_client(api.url, org.admin_key, agent["id"]) as client:
        for form in FORMS.values():
            request = SendMessageRequest(
                message=Message(
                    message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text="go")]
                ),
                configuration=SendMessageConfiguration(
                    task_push_notification_config=TaskPushNotificationConfig(url=url(form, "/p"))
                ),
            )
            with pytest.raises(Exception, match="push notification url refused"):
                async for _ in client.send_message(request):
                    pass


async def test_database_dsn_hosts() -> None:
    for form in FORMS.values():
        for dsn in (
            f"host={form} port=5432 user=u dbname=d",
            f"host=db.example hostaddr={form} port=5432 user=u",
            f"postgresql://u@[{form}]:5432/d",
            f"host=8.8.8.8,{form} port=5432 user=u",
        ):
            with pytest.raises(tenantdb.UnsafeDSNError, match="non-public"):
                await tenantdb.check_dsn(dsn, allow_private=False, platform_url=None)


async def create_with_connection(
    http: httpx.AsyncClient, secret: str, dsn: str
) -> tuple[list[str], list[str]]:
    """Store `dsn` as `secret`, then create a database-destination pipeline and a
    database_change-source pipeline using it; both must be refused: their 422 errors."""
    assert (await http.post("/api/secrets", json={"name": secret, "value": dsn})).status_code == 201
    ref = f"${{secrets.{secret}}}"
    bodies = (
        {
            "name": "to-db",
            "source": {"type": "webhook"},
            "destination": {"type": "database", "config": {"table": "public.t", "connection": ref}},
        },
        {
            "name": "from-db",
            "source": {"type": "database_change", "table": "public.t", "connection": ref},
            "destination": {"type": "webhook", "config": {"url": "${secrets.HOOK_URL}"}},
        },
    )
    errors: list[list[str]] = []
    for body in bodies:
        response = await http.post("/api/streaming/pipelines", json=body)
        assert response.status_code == 422, response.text
        errors.append(response.json()["errors"])
    return errors[0], errors[1]


async def test_database_destination_and_source_connections(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        for index, form in enumerate(FORMS.values()):
            value = f"host={form} port=5432 user=u dbname=d"
            destination, source = await create_with_connection(http, f"DSN_{index}", value)
            assert destination[0].startswith("destination.config.connection: refused")
            assert source[0].startswith("source.connection: refused")
            assert value not in destination[0] + source[0]


async def test_a_public_host_with_a_loopback_hostaddr_is_refused_before_any_connection(
    api: RunningApi, org: Org, worker: Services
) -> None:
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    dsn = f"host=8.8.8.8 hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres"
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
            destination, source = await create_with_connection(http, "SNEAKY_DSN", dsn)
        assert "non-public address 127.0.0.1" in destination[0]
        assert "non-public address 127.0.0.1" in source[0]
        # The worker's delivery path checks again (the secret may change after creation).
        with pytest.raises(DeliveryError, match=r"non-public address 127\.0\.0\.1"):
            await _deliver("database", {"table": "public.t", "connection": dsn}, worker.db)
    finally:
        listener.close()
    assert accepted == []
