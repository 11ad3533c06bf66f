"""Input that JSON or PostgreSQL cannot carry (see `deeployd.storable`), refused at the edge
with a 422 naming its place.

Every route gets `refuse_unstorable_input` (an app-wide dependency) for its path and query
parameters and its JSON body. Pipeline items are the exception for strings: the item log is a
`json` column, which stores NUL and lone surrogates verbatim as escapes, so ingest routes parse
their body with `parse_items_body`, which refuses only non-finite numbers.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from deeployd.storable import UNSTORABLE_CHARACTER, Location, find_unstorable, string_problem


def _refuse(loc: Location, msg: str, kind: str = "value_error") -> RequestValidationError:
    # The location echoes keys the client sent: it must be encodable itself.
    shown = tuple(UNSTORABLE_CHARACTER.sub("\ufffd", p) if isinstance(p, str) else p for p in loc)
    return RequestValidationError([{"loc": shown, "msg": msg, "type": kind}])


async def refuse_unstorable_input(request: Request) -> None:
    """422 for a path or query parameter, or a JSON body, holding what cannot be stored."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and (problem := string_problem(value)):
            raise _refuse(("path", name), problem)
    for name, value in request.query_params.multi_items():
        if problem := string_problem(value):
            raise _refuse(("query", name), problem)
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return  # no declared body: such a route reads (and checks) its body itself
    if not await request.body():
        return
    try:
        # FastAPI has parsed a JSON body already (Starlette caches it); anything that does not
        # parse is not JSON, and FastAPI refuses it against the body's model.
        body = await request.json()
    except (ValueError, RecursionError):
        return
    found = find_unstorable(body, ("body",))
    if found is not None:
        raise _refuse(*found)


def parse_items_body(raw: bytes) -> Any:
    """Parse an ingest body: UTF-8 JSON whose numbers are all finite (strings are kept as they
    are: the item log stores any JSON string). 422 with the path of the first bad number."""
    not_finite = False

    def number(literal: str) -> float:
        nonlocal not_finite
        value = float(literal)
        not_finite = not_finite or math.isinf(value)  # `1e400`: a literal past the float range
        return value

    def constant(literal: str) -> float:  # NaN, Infinity, -Infinity
        nonlocal not_finite
        not_finite = True
        return float(literal)

    try:
        value = json.loads(raw.decode("utf-8"), parse_float=number, parse_constant=constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _refuse(("body",), "invalid JSON (a UTF-8 JSON text)", "json_invalid") from None
    if not_finite:  # only then is the body walked, to name the place
        found = find_unstorable(value, ("body",), strings=False)
        if found is not None:
            raise _refuse(*found)
    return value
