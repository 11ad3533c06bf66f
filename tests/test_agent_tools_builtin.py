"""Built-in tools without a database: calculator, current_time, http_request, the registry."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from deeployd.agents.tools import ToolContext, ToolError, get_tool, list_tools, run_tool, tool_specs
from deeployd.agents.tools.calculator import evaluate
from deeployd.agents.tools.http_request import MAX_RESPONSE_BYTES
from deeployd.settings import Settings
from tests.fakes.openai_server import FakeModelServer


def context(allow_private: bool = True) -> ToolContext:
    published: list[tuple[str, dict]] = []

    async def publish(event_type: str, data: dict) -> None:
        published.append((event_type, data))

    services = SimpleNamespace(settings=Settings(allow_private_urls=allow_private))
    return ToolContext("org_x", "run_x", "conv_x", "agent_x", services, publish)  # type: ignore[arg-type]


# --- calculator -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("(2 + 3) * 7", 35),
        ("-2 ** 2", -4),
        ("7 // 2 + 7 % 2", 4),
        ("10 / 4", 2.5),
        ("sqrt(16) + abs(-3) + max(1, 9, 2) - min(4, 5)", 12),
        ("round(pi, 3)", 3.142),
        ("2 ** 100", 2**100),
        ("1e3 + 0.5", 1000.5),
    ],
)
async def test_calculator_computes(expression: str, result: float) -> None:
    out = await get_tool("calculator").run({"expression": expression}, context())
    assert out == {"expression": expression, "result": result}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('echo pwned')", "attribute access"),
        ("(1).__class__.__bases__", "attribute access"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("[1, 2, 3]", "unsupported syntax"),
        ("lambda: 1", "unsupported syntax"),
        ("'a' * 10", "unsupported constant"),
        ("x + 1", "unknown name 'x'"),
        ("9 ** 9 ** 9", "exponent larger"),
        ("10 ** 5000", "too large"),
        ("(2 ** 5000) * (2 ** 5000) * (2 ** 5000)", "too large"),
        ("10.0 ** 400", "too large"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math error"),
        ("1 +", "not an arithmetic expression"),
        ("1" + " + 1" * 300, "longer than"),
        ("max(*[1, 2])", "unsupported syntax"),
        ("round(1.5, ndigits=1)", "keyword arguments"),
    ],
)
def test_calculator_refuses_anything_but_bounded_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace("*", r"\*")):
        evaluate(expression)


async def test_arguments_are_validated_against_the_schema() -> None:
    with pytest.raises(
        ToolError, match="invalid arguments for calculator: expression: Field required"
    ):
        await get_tool("calculator").run({}, context())
    with pytest.raises(ToolError, match="extra_arg: Extra inputs are not permitted"):
        await get_tool("calculator").run({"expression": "1", "extra_arg": 2}, context())
    with pytest.raises(ToolError, match="unknown tool 'rm_rf'"):
        await run_tool("rm_rf", {}, context())


# --- current_time -----------------------------------------------------------------------------


async def test_current_time_in_utc_and_a_named_zone() -> None:
    utc = await run_tool("current_time", {}, context())
    assert (
        utc["timezone"] == "UTC"
        and datetime.fromisoformat(utc["iso"]).utcoffset().total_seconds() == 0
    )
    tokyo = await run_tool("current_time", {"timezone": "Asia/Tokyo"}, context())
    assert datetime.fromisoformat(tokyo["iso"]).utcoffset().total_seconds() == 9 * 3600
    with pytest.raises(ToolError, match="unknown time zone"):
        await run_tool("current_time", {"timezone": "Mars/Olympus_Mons"}, context())
    with pytest.raises(ToolError, match="unknown time zone"):
        await run_tool("current_time", {"timezone": "../../etc/passwd"}, context())


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_the_built_ins_with_json_schemas() -> None:
    names = [tool.name for tool in list_tools()]
    for name in ("calculator", "current_time", "http_request", "memory_search", "memory_write"):
        assert name in names
    (spec,) = tool_specs(["http_request"])
    assert spec.parameters["required"] == ["url"]
    assert spec.parameters["properties"]["method"]["enum"][:2] == ["GET", "POST"]
    assert "title" not in json.dumps(spec.parameters)
    with pytest.raises(KeyError):
        tool_specs(["calculator", "nope"])


# --- http_request -----------------------------------------------------------------------------


class Target(FakeModelServer):
    """A plain local HTTP server for http_request to call."""

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            body = await request.body()
            self.requests.append(
                SimpleNamespace(method=request.method, body=body, headers=dict(request.headers))
            )
            return JSONResponse(
                {
                    "method": request.method,
                    "body": body.decode(),
                    "type": request.headers.get("content-type"),
                },
                headers={"etag": '"v1"', "x-secret-internal": "hidden"},
            )

        async def big(request: Request) -> Response:
            return PlainTextResponse("x" * (MAX_RESPONSE_BYTES * 3))

        async def hop(request: Request) -> Response:
            return RedirectResponse("/echo", status_code=302)

        async def cross(request: Request) -> Response:
            # same server, other host name: a different origin for the client
            return RedirectResponse(f"http://localhost:{self.port}/echo", status_code=303)

        async def loop(request: Request) -> Response:
            return RedirectResponse("/loop", status_code=307)

        async def missing(request: Request) -> Response:
            return PlainTextResponse("nope", status_code=404)

        return Starlette(
            routes=[
                Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE"]),
                Route("/big", big),
                Route("/hop", hop),
                Route("/loop", loop),
                Route("/cross", cross, methods=["POST"]),
                Route("/missing", missing),
            ]
        )


async def test_http_request_sends_and_returns_status_headers_and_body() -> None:
    async with Target() as target:
        out = await run_tool(
            "http_request",
            {
                "method": "post",
                "url": f"{target.origin}/echo",
                "body": {"n": 1},
                "headers": {"X-A": "b"},
            },
            context(),
        )
        assert out["status"] == 200
        assert json.loads(out["body"]) == {
            "method": "POST",
            "body": '{"n": 1}',
            "type": "application/json",
        }
        assert out["headers"]["etag"] == '"v1"' and "x-secret-internal" not in out["headers"]
        assert out["truncated"] is False
        assert target.requests[0].headers["x-a"] == "b"

        redirected = await run_tool("http_request", {"url": f"{target.origin}/hop"}, context())
        assert redirected["status"] == 200 and redirected["url"].endswith("/echo")

        # 303 turns the POST into a GET; the Authorization header stays with its origin.
        crossed = await run_tool(
            "http_request",
            {
                "method": "POST",
                "url": f"{target.origin}/cross",
                "body": "x",
                "headers": {"Authorization": "Bearer secret", "X-Keep": "1"},
            },
            context(),
        )
        assert crossed["status"] == 200 and json.loads(crossed["body"])["method"] == "GET"
        last = target.requests[-1].headers
        assert "authorization" not in last and last["x-keep"] == "1"

        missing = await run_tool("http_request", {"url": f"{target.origin}/missing"}, context())
        assert (missing["status"], missing["body"]) == (404, "nope")

        with pytest.raises(ToolError, match="more than 5 redirects"):
            await run_tool("http_request", {"url": f"{target.origin}/loop"}, context())


async def test_http_request_truncates_big_bodies() -> None:
    async with Target() as target:
        out = await run_tool("http_request", {"url": f"{target.origin}/big"}, context())
    assert out["truncated"] is True
    assert len(out["body"]) == MAX_RESPONSE_BYTES


async def test_http_request_refuses_private_addresses_unless_allowed() -> None:
    async with Target() as target:
        for url in (f"{target.origin}/echo", f"http://localhost:{target.port}/echo"):
            with pytest.raises(ToolError, match="non-public address"):
                await run_tool("http_request", {"url": url}, context(allow_private=False))
        assert target.requests == []  # nothing reached the server
    for url in ("file:///etc/passwd", "gopher://x/", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(ToolError, match="refused"):
            await run_tool("http_request", {"url": url}, context(allow_private=False))
