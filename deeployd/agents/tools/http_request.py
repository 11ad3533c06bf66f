"""`http_request`: call an HTTP endpoint; outbound addresses checked by deeployd.netguard.

Every hop (redirects are followed by hand, at most 5) is checked with `check_outbound_url`, so a
public URL cannot redirect the worker into the private network. The response body is read up to
`MAX_RESPONSE_BYTES` (64 KiB) and decoded as text; `truncated` says whether more was cut off.
Non-2xx statuses are results, not errors: the model sees the status and decides.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deeployd.agents.tools.base import BaseTool, ToolContext, ToolError, register_tool
from deeployd.netguard import UnsafeURLError, check_outbound_url

MAX_RESPONSE_BYTES = 64 * 1024
MAX_REQUEST_BODY_CHARS = 256 * 1024
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT_S = 15.0
RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "date",
    "last-modified",
    "etag",
    "cache-control",
    "retry-after",
)
_REDIRECTS = (301, 302, 303, 307, 308)
_CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


class HttpRequestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = Field(
        default="GET", description="HTTP method."
    )
    url: str = Field(min_length=1, max_length=2048, description="Absolute http(s) URL.")
    headers: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="Request headers."
    )
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="Request body: a string, or JSON (sent as application/json)."
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_S, gt=0, le=60, alias="timeoutSeconds", description="Timeout."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class HttpRequest(BaseTool):
    name = "http_request"
    description = (
        "Make an HTTP request and return the status, some response headers and the body "
        f"(text, at most {MAX_RESPONSE_BYTES // 1024} KiB)."
    )
    Args = HttpRequestArgs

    async def execute(self, params: HttpRequestArgs, ctx: ToolContext) -> dict[str, Any]:
        allow_private = bool(ctx.services.settings.allow_private_urls)
        headers = dict(params.headers)
        content: bytes | None = None
        if isinstance(params.body, str):
            content = params.body.encode()
        elif params.body is not None:
            content = json.dumps(params.body).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["content-type"] = "application/json"
        if content is not None and len(content) > MAX_REQUEST_BODY_CHARS:
            raise ToolError(f"request body is larger than {MAX_REQUEST_BODY_CHARS} bytes")

        method, url = params.method, params.url
        try:
            async with httpx.AsyncClient(
                timeout=params.timeout_seconds, follow_redirects=False
            ) as http:
                for _ in range(MAX_REDIRECTS + 1):
                    await _guard(url, allow_private)
                    request = http.build_request(method, url, headers=headers, content=content)
                    response = await http.send(request, stream=True)
                    try:
                        if response.status_code in _REDIRECTS and "location" in response.headers:
                            target = urljoin(url, response.headers["location"])
                            if _origin(target) != _origin(url):
                                # Credentials meant for one host are not forwarded to another.
                                headers = {
                                    k: v
                                    for k, v in headers.items()
                                    if k.lower() not in _CREDENTIALS
                                }
                            url = target
                            if response.status_code == 303 or (
                                response.status_code in (301, 302) and method == "POST"
                            ):
                                method, content = "GET", None
                                headers = {
                                    k: v for k, v in headers.items() if k.lower() != "content-type"
                                }
                            continue
                        return await _result(response, url)
                    finally:
                        await response.aclose()
                raise ToolError(f"more than {MAX_REDIRECTS} redirects")
        except httpx.TimeoutException:
            raise ToolError(
                f"{params.method} {url} timed out after {params.timeout_seconds:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise ToolError(f"{params.method} {url} failed: {exc or type(exc).__name__}") from None


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


async def _guard(url: str, allow_private: bool) -> None:
    try:
        await check_outbound_url(url, allow_private=allow_private)
    except UnsafeURLError as exc:
        raise ToolError(f"refused to call {url}: {exc}") from None


async def _result(response: httpx.Response, url: str) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > MAX_RESPONSE_BYTES:
            chunks.append(chunk[: MAX_RESPONSE_BYTES - size])
            truncated = True
            break
        chunks.append(chunk)
        size += len(chunk)
    raw = b"".join(chunks)
    return {
        "status": response.status_code,
        "url": url,
        "headers": {k: response.headers[k] for k in RESPONSE_HEADERS if k in response.headers},
        "body": raw.decode(response.encoding or "utf-8", errors="replace"),
        "truncated": truncated,
    }


register_tool(HttpRequest())
