"""The A2A endpoints, built from the a2a-sdk's Starlette routes, mounted at `/a2a`:

    GET  /a2a/agents/{agentId}/.well-known/agent-card.json   the agent's card
    POST /a2a/agents/{agentId}                               JSON-RPC 1.0 (+ 0.3 methods)
    *    /a2a/agents/{agentId}/rest/...                      HTTP+JSON 1.0 (+ 0.3 under /v1)

Every request carries an API key (`Authorization: Bearer …`, declared in the card's security
schemes); the wrapper resolves it to the caller's organisation before the SDK sees the request,
and an agent of another organisation is 404 like anything else.
"""

from __future__ import annotations

import re
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import (
    DefaultServerCallContextBuilder,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from api.middleware import HttpMiddleware
from deeployd.a2a.handler import DeeploydRequestHandler
from deeployd.agents import store as agent_store
from deeployd.models.organization import Scope as KeyScope
from deeployd.orgs import KeyAuthenticator, Principal
from deeployd.services import Services

PREFIX = "/a2a"
_AGENT_PATH = re.compile(r"/a2a/agents/([^/]+)")
PRINCIPAL_KEY = "deeployd.principal"
AGENT_KEY = "deeployd.agent"
IO_MODES = ["text/plain", "application/json"]


class _ContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context plus who is calling (org) and which agent is addressed."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        principal: Principal = request.scope[PRINCIPAL_KEY]
        context.state["org_id"] = principal.org_id
        context.state["key_id"] = principal.key_id
        context.state["agent_id"] = request.scope[AGENT_KEY]["id"]
        return context


def base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def load_agent(
    services: Services, org_id: str, agent_id: str | None
) -> dict[str, Any] | None:
    """The agent (or, without an id, the organisation's default: its oldest agent)."""
    return await agent_store.agent_for_card(services.db.pool, org_id, agent_id)


def agent_card(agent: dict[str, Any], root: str) -> AgentCard:
    url = f"{root}{PREFIX}/agents/{agent['id']}"
    interfaces = [
        AgentInterface(
            url=url, protocol_binding=TransportProtocol.JSONRPC, protocol_version=version
        )
        for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
    ] + [
        AgentInterface(
            url=f"{url}/rest",
            protocol_binding=TransportProtocol.HTTP_JSON,
            protocol_version=version,
        )
        for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
    ]
    description = agent["description"] or f"Deeployd agent {agent['name']}"
    return AgentCard(
        name=agent["name"],
        description=description,
        version="1.0.0",
        provider=AgentProvider(organization="Deeployd", url=root),
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        security_schemes={
            "apiKey": SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer",
                    bearer_format="Deeployd API key",
                    description="A Deeployd API key of the agent's organisation.",
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={"apiKey": StringList()})],
        default_input_modes=IO_MODES,
        default_output_modes=IO_MODES,
        skills=[
            AgentSkill(
                id=agent["id"],
                name=agent["name"],
                description=description,
                tags=[str(t) for t in agent["tools"] or []] or ["chat"],
                input_modes=IO_MODES,
                output_modes=IO_MODES,
            )
        ],
    )


def card_response(agent: dict[str, Any], request: Request) -> JSONResponse:
    return JSONResponse(agent_card_to_dict(agent_card(agent, base_url(request))))


async def _card(request: Request) -> Response:
    return card_response(request.scope[AGENT_KEY], request)


class _Authenticated(HttpMiddleware):
    """Resolve the bearer key and the addressed agent before any A2A route runs."""

    def __init__(self, app: ASGIApp, api: Any) -> None:
        super().__init__(app)
        self._api = api

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        services: Services = self._api.state.services
        authenticator: KeyAuthenticator = self._api.state.authenticator
        principal = None
        if kind.lower() == "bearer" and token.strip():
            async with services.db.session() as session:
                principal = await authenticator.authenticate(session, token.strip())
        if principal is None:
            response: Response = JSONResponse(
                {"detail": "missing or invalid API key"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        needed = KeyScope.read if request.method == "GET" else KeyScope.write
        if not principal.allows(needed):
            response = JSONResponse(
                {"detail": f"this API key lacks the {needed} scope"}, status_code=403
            )
            await response(scope, receive, send)
            return
        match = _AGENT_PATH.match(scope["path"])
        agent = await load_agent(services, principal.org_id, match.group(1) if match else None)
        if agent is None:
            response = JSONResponse({"detail": "agent not found"}, status_code=404)
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        scope[AGENT_KEY] = agent
        # Like `request.state.principal` in the API's own routes: request accounting (and the
        # `api_event` pipeline source) sees which organisation made the call.
        state = scope.setdefault("state", {})
        if isinstance(state, dict):
            state["principal"] = principal
        await self.app(scope, receive, send)


def build_a2a_app(api: Any) -> ASGIApp:
    """The ASGI app mounted at `/a2a` (`api` is the FastAPI app, for its state)."""
    handler = DeeploydRequestHandler(lambda: api.state.services)
    context_builder = _ContextBuilder()
    jsonrpc = create_jsonrpc_routes(
        handler,
        rpc_url="/agents/{agent_id}",
        context_builder=context_builder,
        enable_v0_3_compat=True,
    )
    rest = create_rest_routes(handler, context_builder=context_builder, enable_v0_3_compat=True)
    router = Router(
        routes=[
            Route("/agents/{agent_id}/.well-known/agent-card.json", _card, methods=["GET"]),
            *jsonrpc,
            Mount("/agents/{agent_id}/rest", routes=rest),
        ]
    )
    return _Authenticated(router, api)
