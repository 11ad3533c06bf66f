"""Error responses: validation errors name the exact path of the bad field; a dependency that
is down (PostgreSQL, Temporal) is a JSON 503 with Retry-After, decided here for every route."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import psycopg_pool
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from deeployd.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
    format_loc,
)
from deeployd.idempotency import IdempotencyKeyReused


def describe_errors(errors: Sequence[Any]) -> list[str]:
    """Each error as `"transforms[1].config: <msg>"` (the `errors` list of every 422)."""
    return [f"{format_loc(list(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors]


def _unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    """The one 422 shape: FastAPI's `detail` list plus readable `errors`."""
    return JSONResponse(
        status_code=422,
        content={"detail": jsonable_encoder(errors), "errors": describe_errors(errors)},
    )


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        error.pop("input", None)  # may echo secrets back
        error.pop("ctx", None)
        error.pop("url", None)
    return _unprocessable(errors)


_TEMPORAL_DOWN = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what caused it, and the members of exception groups (task groups)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)


def unavailable_dependency(exc: BaseException) -> str | None:
    """'PostgreSQL' or 'Temporal' when `exc` means that dependency is down, unreachable or timed
    out (a retry shortly may succeed); None for anything else."""
    for cause in _causes(exc):
        if isinstance(cause, Unavailable):
            return cause.dependency
        if isinstance(
            cause,
            psycopg.OperationalError  # connection lost or refused, statement timeout
            | psycopg.InterfaceError  # the connection is closed
            | psycopg_pool.PoolTimeout
            | sqlalchemy.exc.TimeoutError  # pool checkout timeout
            | sqlalchemy.exc.OperationalError
            | sqlalchemy.exc.InterfaceError,
        ):
            return "PostgreSQL"
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return "PostgreSQL"
        if isinstance(cause, RPCError) and cause.status in _TEMPORAL_DOWN:
            return "Temporal"
    return None


def unavailable_body(message: str, retry_after_s: int, request_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "retryAfter": retry_after_s}
    if request_id:
        body["requestId"] = request_id
    return body


def _retry_after(request: Request) -> int:
    services = getattr(request.app.state, "services", None)
    return int(services.settings.retry_after_seconds) if services is not None else 2


async def _http_handler(request: Request, exc: Exception) -> Response:
    """Every 503, wherever raised, carries `error`, `retryAfter` and a Retry-After header."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 503:
        return await http_exception_handler(request, exc)
    return _unavailable(request, str(exc.detail), exc.headers)


def _unavailable(request: Request, message: str, headers: Mapping[str, str] | None) -> JSONResponse:
    retry_after = _retry_after(request)
    return JSONResponse(
        status_code=503,
        content={
            "detail": message,
            **unavailable_body(message, retry_after, getattr(request.state, "request_id", None)),
        },
        headers={**(headers or {}), "Retry-After": str(retry_after)},
    )


async def _key_reused_handler(request: Request, exc: Exception) -> JSONResponse:
    message = "this Idempotency-Key was first used with a different request body"
    return _unprocessable(
        [{"loc": ["header", "Idempotency-Key"], "msg": message, "type": "value_error"}]
    )


_DOMAIN_STATUS: dict[type[DomainError], int] = {NotFound: 404, Conflict: 409, Forbidden: 403}


async def _domain_handler(request: Request, exc: Exception) -> Response:
    """A service's refusal, in the same shapes as FastAPI's own errors."""
    assert isinstance(exc, DomainError)
    if isinstance(exc, Invalid):
        return _unprocessable(
            [{"loc": list(e.loc), "msg": e.msg, "type": "value_error"} for e in exc.errors]
        )
    if isinstance(exc, Unavailable):
        return _unavailable(request, exc.message, None)
    status = next((code for kind, code in _DOMAIN_STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse(status_code=status, content={"detail": exc.message})


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(IdempotencyKeyReused, _key_reused_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
