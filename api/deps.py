"""Dependency shortcuts shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request, status
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client as TemporalClient

from api.sse import EventStreamer, last_event_id
from deeployd.errors import Unavailable
from deeployd.idempotency import MAX_KEY_LENGTH, IdempotencyKey
from deeployd.models.organization import Scope
from deeployd.orgs import KeyAuthenticator, Principal
from deeployd.secretstore import SecretStore
from deeployd.services import Services
from deeployd.settings import Settings


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.db.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_temporal(services: ServicesDep) -> TemporalClient:
    if services.temporal is None:
        raise Unavailable("Temporal", "Temporal is not reachable yet")
    return services.temporal


TemporalDep = Annotated[TemporalClient, Depends(get_temporal)]


def get_streamer(request: Request) -> EventStreamer:
    streamer: EventStreamer = request.app.state.streamer
    return streamer


StreamerDep = Annotated[EventStreamer, Depends(get_streamer)]

# What a query parameter may carry to PostgreSQL: ids are BIGINT, and SQLAlchemy sends
# LIMIT/OFFSET as INTEGER. Bounded in the schema, a larger value is a 422, not a failed query.
MAX_BIGINT = 2**63 - 1
MAX_INTEGER = 2**31 - 1
PageOffset = Annotated[int, Query(ge=0, le=MAX_INTEGER, description="items to skip")]
LastEventIdDep = Annotated[int | None, Depends(last_event_id)]


def get_secret_store(services: ServicesDep) -> SecretStore:
    return SecretStore(services.db, services.secret_box)


SecretStoreDep = Annotated[SecretStore, Depends(get_secret_store)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "missing or invalid API key",
    headers={"WWW-Authenticate": "Bearer"},
)


async def _authenticate(request: Request, services: Services, key: str | None) -> Principal:
    if not key:
        raise _UNAUTHORIZED
    authenticator: KeyAuthenticator = request.app.state.authenticator
    async with services.db.session() as session:
        principal = await authenticator.authenticate(session, key)
    if principal is None:
        raise _UNAUTHORIZED
    request.state.principal = principal
    return principal


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    return await _authenticate(request, services, _bearer(request))


async def get_stream_principal(
    request: Request,
    services: ServicesDep,
    access_token: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Principal:
    """SSE endpoints also take `?access_token=`: a browser's EventSource cannot set headers."""
    return await _authenticate(request, services, _bearer(request) or access_token)


def require_scope(scope: Scope):  # type: ignore[no-untyped-def]
    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks the {scope} scope")
        return principal

    return dependency


CurrentPrincipal = Annotated[Principal, Depends(require_scope(Scope.read))]
WritePrincipal = Annotated[Principal, Depends(require_scope(Scope.write))]
AdminPrincipal = Annotated[Principal, Depends(require_scope(Scope.admin))]
StreamPrincipal = Annotated[Principal, Depends(get_stream_principal)]


def idempotency_key(
    request: Request,
    principal: Principal,
    key: str | None,
    body: bytes | str,
) -> IdempotencyKey | None:
    """The request's `Idempotency-Key`, scoped to its organisation and route (with its path
    parameters); None when the request carries none."""
    if key is None:
        return None
    settings: Settings = request.app.state.services.settings
    return IdempotencyKey.of(
        principal.org_id,
        f"{request.method} {request.url.path}",
        key,
        body,
        settings.idempotency_retention_hours,
    )


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[\x21-\x7e]+$",
        description="Retries with the same key get the first answer and create nothing new "
        "(kept idempotency_retention_hours; a different body with the same key is a 422)",
    ),
]
