"""A local Slack incoming webhook (and a generic JSON webhook), speaking Slack's wire format.

Slack answers an incoming-webhook POST with the plain-text body `ok` (HTTP 200); a body that is not
JSON gets 400 `invalid_payload`, a payload without `text` (or blocks) 400 `no_text`, an unknown hook
404 `no_service`, and a message over 40,000 characters is truncated by Slack (we reject it with 400
`msg_too_long` so tests notice), and rate limiting is 429 with `Retry-After`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

HOOK_PATH = "/services/T000/B000/XXXXSECRET"
MAX_TEXT = 40_000


class SlackFake:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.generic: list[dict[str, Any]] = []
        self.rate_limit_next = 0
        self.app = Starlette(
            routes=[
                Route("/services/{path:path}", self._slack, methods=["POST"]),
                Route("/hook", self._generic, methods=["POST"]),
            ]
        )

    async def _slack(self, request: Request) -> Response:
        if request.url.path != HOOK_PATH:
            return PlainTextResponse("no_service", 404)
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            return PlainTextResponse("rate_limited", 429, headers={"Retry-After": "1"})
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", 400)
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return PlainTextResponse("no_text", 400)
        if len(body.get("text") or "") > MAX_TEXT:
            return PlainTextResponse("msg_too_long", 400)
        self.messages.append(body)
        return PlainTextResponse("ok")

    async def _generic(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.generic.append(body)
        return JSONResponse({"ok": True})
