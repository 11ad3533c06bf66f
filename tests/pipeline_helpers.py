"""Helpers shared by the pipeline tests: a destination table in the org's schema, polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import psycopg

from deeployd.pipelines.destinations.database import org_schema
from deeployd.settings import Settings

T = TypeVar("T")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_table(settings: Settings, org_id: str, ddl: str) -> str:
    """Create the org's destination schema and run `ddl` (with {schema} filled in)."""
    schema = org_schema(org_id)
    async with await psycopg.AsyncConnection.connect(
        settings.require_database_url(), autocommit=True
    ) as conn:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(ddl.format(schema=f'"{schema}"'))
    return schema


async def query(settings: Settings, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(
        settings.require_database_url(), autocommit=True
    ) as conn:
        cursor = await conn.execute(sql, params)
        return list(await cursor.fetchall()) if cursor.description else []


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    every: float = 0.2,
) -> T:
    """Poll `probe` until `until(value)`; the last value is returned or the timeout raised."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if until(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(every)


def group_of(value: dict[str, Any], paths: list[str]) -> str:
    """A record's group identity for `paths` (dotted = nested): its group values as canonical
    JSON, the reference a groupBy result is checked against."""
    import json

    values = []
    for path in paths:
        v: Any = value
        for segment in path.split("."):
            v = v.get(segment) if isinstance(v, dict) else None
        values.append(v)
    return json.dumps(values, sort_keys=True)


async def metrics(http: httpx.AsyncClient, key: str, pipeline_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/streaming/pipelines/{pipeline_id}/metrics", headers=auth(key))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


class HookReceiver:
    """A real HTTP server (starlette on uvicorn, loopback) standing in for a customer's webhook
    endpoint. `down` makes it answer 503; every request is recorded."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.requests: list[dict[str, Any]] = []  # every attempt
        self.accepted: list[dict[str, Any]] = []  # 2xx answers only
        self.down = False
        self.status_when_down = 503
        self.fail_after: int | None = None  # accept this many, then fail the next one once
        # answer 422 (a refusal of that item alone) to bodies this returns True for
        self.refuse: Callable[[Any], bool] | None = None

        async def hook(request: Request) -> JSONResponse:
            import json

            record = {
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": await request.body(),
            }
            record["json"] = json.loads(record["body"])
            self.requests.append(record)
            if self.fail_after is not None and len(self.accepted) >= self.fail_after:
                self.fail_after = None
                return JSONResponse({"error": "hiccup"}, status_code=503)
            if self.down:
                return JSONResponse({"error": "down"}, status_code=self.status_when_down)
            if self.refuse is not None and self.refuse(record["json"]):
                return JSONResponse({"error": "unprocessable item"}, status_code=422)
            self.accepted.append(record)
            return JSONResponse({"ok": True})

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.url = ""
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HookReceiver:
        import uvicorn

        from deeployd.devstack import free_port

        port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_config=None)
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110  (uvicorn offers no started event)
            await asyncio.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=10)
