"""Error responses: validation errors name the exact path of the bad field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

_LOCATION_ROOTS = {"body", "query", "path", "header", "cookie"}


def format_location(loc: Sequence[Any]) -> str:
    """('body', 'transforms', 1, 'config') -> 'transforms[1].config'."""
    parts = list(loc)
    prefix = ""
    if parts and parts[0] in _LOCATION_ROOTS:
        root = parts.pop(0)
        if root != "body":
            prefix = f"{root}."
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return prefix + text


def describe_errors(errors: Sequence[Any]) -> list[str]:
    return [f"{format_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        error.pop("input", None)  # may echo secrets back
        error.pop("ctx", None)
        error.pop("url", None)
    return JSONResponse(
        status_code=422,
        content={"detail": jsonable_encoder(errors), "errors": describe_errors(errors)},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
