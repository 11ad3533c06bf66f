"""A local stand-in for Segment, Mixpanel and Amplitude ingestion APIs, speaking their wire formats.

What each endpoint checks mirrors the public docs:
- Segment `POST /v1/batch`: HTTP Basic auth with the write key as username; `{"batch": [...]}` of
  `track` messages with `event`, `messageId`, `timestamp` and `userId` or `anonymousId`; at most
  32 KB per message and 500 KB per request (400 otherwise); answers `{"success": true}`.
- Mixpanel `POST /import?strict=1`: Basic auth with the project token as username (or a service
  account `username:secret` plus the `project_id` query parameter); a JSON array of at most 2000 events, each with `event` and
  `properties.time`, `properties.distinct_id`, `properties.$insert_id` (<= 36 chars of
  `[A-Za-z0-9-]`); answers `{"code": 200, "num_records_imported": N, "status": "OK"}` or a strict-mode
  400 with `failed_records`.
- Amplitude `POST /2/httpapi`: `{"api_key": ..., "events": [...]}` with at most 2000 events, each
  with `event_type` and `user_id` or `device_id` (at least `options.min_id_length`, default 5,
  characters); answers `{"code": 200, "events_ingested": N, ...}`; 400 names the bad events by
  index; 413 when the body is larger than `max_body_bytes`.
All three de-duplicate on their id (`messageId`, `$insert_id`, `insert_id`), as the services do.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SEGMENT_MAX_MESSAGE = 32 * 1024
SEGMENT_MAX_BATCH = 500 * 1024
MAX_EVENTS = 2000
_INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")


@dataclass
class Injected:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any
    size: int


class AnalyticsFake:
    def __init__(
        self,
        *,
        segment_write_key: str = "seg-write-key",
        mixpanel_token: str = "mp-project-token",
        amplitude_api_key: str = "amp-api-key",
        mixpanel_service_account: tuple[str, str, str] = ("sa.user", "sa-secret", "4242"),
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        self.segment_write_key = segment_write_key
        self.mixpanel_token = mixpanel_token
        self.amplitude_api_key = amplitude_api_key
        self.mixpanel_service_account = mixpanel_service_account  # (username, secret, project)
        self.max_body_bytes = max_body_bytes
        self.requests: list[Received] = []
        # Stored events by provider, keyed by their dedup id (what the real service would keep).
        self.segment: dict[str, dict[str, Any]] = {}
        self.mixpanel: dict[str, dict[str, Any]] = {}
        self.amplitude: dict[str, dict[str, Any]] = {}
        self.custom: list[Any] = []
        self._injected: deque[Injected] = deque()
        self.app = Starlette(
            routes=[
                Route("/v1/batch", self._segment, methods=["POST"]),
                Route("/import", self._mixpanel, methods=["POST"]),
                Route("/2/httpapi", self._amplitude, methods=["POST"]),
                Route("/custom", self._custom, methods=["POST"]),
            ]
        )

    def inject(
        self, status: int, body: Any, headers: dict[str, str] | None = None, n: int = 1
    ) -> None:
        """The next `n` requests get this response instead of being processed."""
        for _ in range(n):
            self._injected.append(Injected(status, body, headers or {}))

    async def _receive(self, request: Request) -> tuple[Received, Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        received = Received(
            request.url.path, dict(request.headers), dict(request.query_params), body, len(raw)
        )
        self.requests.append(received)
        if self._injected:
            injected = self._injected.popleft()
            return received, JSONResponse(
                injected.body, status_code=injected.status, headers=injected.headers
            )
        return received, None

    # -- Segment ---------------------------------------------------------------------------------

    async def _segment(self, request: Request) -> Response:
        received, injected = await self._receive(request)
        if injected is not None:
            return injected
        if _basic_user(received.headers) != self.segment_write_key:
            return JSONResponse({"success": False, "message": "invalid write key"}, 401)
        if received.size > SEGMENT_MAX_BATCH:
            return JSONResponse({"success": False, "message": "batch exceeds 500KB"}, 400)
        batch = received.body.get("batch") if isinstance(received.body, dict) else None
        if not isinstance(batch, list):
            return JSONResponse({"success": False, "message": "invalid JSON: batch missing"}, 400)
        for message in batch:
            if len(json.dumps(message).encode()) > SEGMENT_MAX_MESSAGE:
                return JSONResponse({"success": False, "message": "message exceeds 32KB"}, 400)
            ok = (
                message.get("type") == "track"
                and isinstance(message.get("event"), str)
                and isinstance(message.get("messageId"), str)
                and isinstance(message.get("timestamp"), str)
                and (message.get("userId") or message.get("anonymousId"))
            )
            if not ok:
                return JSONResponse({"success": False, "message": "invalid track message"}, 400)
        for message in batch:
            self.segment.setdefault(message["messageId"], message)
        return JSONResponse({"success": True})

    # -- Mixpanel --------------------------------------------------------------------------------

    async def _mixpanel(self, request: Request) -> Response:
        received, injected = await self._receive(request)
        if injected is not None:
            return injected
        user, secret = _basic(received.headers)
        username, account_secret, project = self.mixpanel_service_account
        by_token = user == self.mixpanel_token
        by_account = (user, secret) == (username, account_secret)
        if not by_token and not by_account:
            return JSONResponse({"error": "Invalid credentials", "status": 0}, 401)
        if by_account and received.query.get("project_id") != project:
            return JSONResponse(
                {"error": "project_id is required with service account auth", "status": 0}, 400
            )
        if received.size > self.max_body_bytes:
            return JSONResponse({"code": 413, "error": "request too large", "status": 0}, 413)
        events = received.body
        if not isinstance(events, list):
            return JSONResponse(
                {"code": 400, "error": "body must be a JSON array", "status": 0}, 400
            )
        if len(events) > MAX_EVENTS:
            return JSONResponse(
                {"code": 400, "error": "max 2000 events per request", "status": 0}, 400
            )
        failed: list[dict[str, Any]] = []
        imported = 0
        for index, event in enumerate(events):
            props = event.get("properties") if isinstance(event, dict) else None
            problem = None
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                problem = ("event", "'event' must be a non-empty string")
            elif not isinstance(props, dict):
                problem = ("properties", "'properties' must be an object")
            elif not isinstance(props.get("time"), int | float):
                problem = ("properties.time", "'properties.time' is required")
            elif "distinct_id" not in props:
                problem = ("properties.distinct_id", "'properties.distinct_id' is required")
            elif not isinstance(props.get("$insert_id"), str) or not _INSERT_ID.match(
                props["$insert_id"]
            ):
                problem = ("properties.$insert_id", "invalid $insert_id")
            if problem is not None:
                failed.append(
                    {
                        "index": index,
                        "$insert_id": (props or {}).get("$insert_id"),
                        "field": problem[0],
                        "message": problem[1],
                    }
                )
                continue
            self.mixpanel.setdefault(props["$insert_id"], event)
            imported += 1
        if failed and received.query.get("strict") == "1":
            return JSONResponse(
                {
                    "code": 400,
                    "error": "some data points in the request failed validation",
                    "failed_records": failed,
                    "num_records_imported": imported,
                    "status": "Bad Request",
                },
                400,
            )
        return JSONResponse({"code": 200, "num_records_imported": imported, "status": "OK"})

    # -- Amplitude -------------------------------------------------------------------------------

    async def _amplitude(self, request: Request) -> Response:
        received, injected = await self._receive(request)
        if injected is not None:
            return injected
        if received.size > self.max_body_bytes:
            return JSONResponse({"code": 413, "error": "Payload too large"}, 413)
        body = received.body if isinstance(received.body, dict) else {}
        if body.get("api_key") != self.amplitude_api_key:
            return JSONResponse(
                {"code": 400, "error": "Invalid API key: " + str(body.get("api_key"))}, 400
            )
        events = body.get("events")
        if not isinstance(events, list):
            return JSONResponse(
                {"code": 400, "error": "Request missing required field", "missing_field": "events"},
                400,
            )
        if len(events) > MAX_EVENTS:
            return JSONResponse({"code": 400, "error": "Too many events in request"}, 400)
        min_len = int((body.get("options") or {}).get("min_id_length") or 5)
        missing: dict[str, list[int]] = {}
        invalid: dict[str, list[int]] = {}
        bad_ids: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            if not event.get("event_type"):
                missing.setdefault("event_type", []).append(index)
            uid, did = event.get("user_id"), event.get("device_id")
            if not uid and not did:
                missing.setdefault("user_id", []).append(index)
            for name, value in (("user_id", uid), ("device_id", did)):
                if value and len(str(value)) < min_len:
                    bad_ids.setdefault(name, []).append(index)
            if "time" in event and not isinstance(event["time"], int):
                invalid.setdefault("time", []).append(index)
        if missing or invalid or bad_ids:
            error: dict[str, Any] = {"code": 400, "error": "Invalid field values on some events"}
            if missing:
                error["events_with_missing_fields"] = missing
            if invalid:
                error["events_with_invalid_fields"] = invalid
            if bad_ids:
                error["events_with_invalid_id_lengths"] = bad_ids
            return JSONResponse(error, 400)
        for event in events:
            key = event.get("insert_id") or f"anon-{len(self.amplitude)}"
            self.amplitude.setdefault(key, event)
        return JSONResponse(
            {
                "code": 200,
                "events_ingested": len(events),
                "payload_size_bytes": received.size,
                "server_upload_time": int(time.time() * 1000),
            }
        )

    # -- Custom ----------------------------------------------------------------------------------

    async def _custom(self, request: Request) -> Response:
        received, injected = await self._receive(request)
        if injected is not None:
            return injected
        if not isinstance(received.body, list):
            return JSONResponse({"error": "expected a JSON array"}, 400)
        self.custom.extend(received.body)
        return JSONResponse({"received": len(received.body)})


def _basic(headers: dict[str, str]) -> tuple[str | None, str | None]:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None, None
    return user, password


def _basic_user(headers: dict[str, str]) -> str | None:
    return _basic(headers)[0]
