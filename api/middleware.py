"""Request accounting and the error boundary, as pure ASGI middleware (safe for streaming
responses)."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import unavailable_body, unavailable_dependency
from deeployd import metrics
from deeployd.request_log import RequestObserver, RequestRecord

log = logging.getLogger("deeployd.access")


class HttpMiddleware:
    """Pure ASGI middleware for HTTP requests: `handle` sees each one; anything else (lifespan,
    websockets) passes straight through to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        else:
            await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestMetricsMiddleware(HttpMiddleware):
    """Counts requests, times them to the response headers, and tells registered observers."""

    def __init__(self, app: ASGIApp, observers: list[RequestObserver]) -> None:
        super().__init__(app)
        self.observers = observers

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                self._record(scope, status_code, started)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            self._record(scope, status_code, started)
            raise

    def _record(self, scope: Scope, status_code: int, started: float) -> None:
        latency = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        metrics.HTTP_REQUESTS.labels(method, template, str(status_code)).inc()
        metrics.HTTP_LATENCY.labels(method, template).observe(latency)
        state = scope.get("state") or {}
        principal = state.get("principal") if isinstance(state, dict) else None
        record = RequestRecord(
            method=method,
            path=scope["path"],
            route=template,
            status=status_code,
            latency_ms=round(latency * 1000, 3),
            org_id=getattr(principal, "org_id", None),
            key_prefix=getattr(principal, "key_prefix", None),
            ts=time.time(),
        )
        log.info(
            "%s %s %s", method, scope["path"], status_code, extra={"latency_ms": record.latency_ms}
        )
        for observer in self.observers:
            try:
                observer(record)
            except Exception:
                log.exception("request observer failed")


_REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")
errors_log = logging.getLogger("deeployd.errors")


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and set(text) <= _REQUEST_ID_CHARS:
                return text
            break
    return uuid.uuid4().hex


class ErrorBoundaryMiddleware(HttpMiddleware):
    """The last word on every request: a request id on every response (`X-Request-ID`), and no
    exception ever reaches the server. While PostgreSQL or Temporal is down the answer is a JSON
    503 with Retry-After; any other failure is a JSON 500 carrying the request id, logged with
    its traceback. Nothing is re-raised, so the server keeps the keep-alive connection open. A
    stream that fails after its headers went out is ended cleanly (the client resumes by
    Last-Event-ID)."""

    def __init__(self, app: ASGIApp, retry_after_s: Callable[[], int]) -> None:
        super().__init__(app)
        self.retry_after_s = retry_after_s

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = finished = False

        async def send_with_id(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            dependency = unavailable_dependency(exc)
            where = f"{scope['method']} {scope['path']}"
            if dependency is not None:
                errors_log.warning(
                    "%s: %s unavailable (%s) [request %s]",
                    where,
                    dependency,
                    type(exc).__name__,
                    request_id,
                    extra={"request_id": request_id},
                )
            else:
                errors_log.exception(
                    "%s failed [request %s]", where, request_id, extra={"request_id": request_id}
                )
            if finished:
                return
            with contextlib.suppress(Exception):  # the client may be gone already
                if started:  # mid-stream: end the body cleanly instead of resetting
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if dependency is not None:
                    retry_after = self.retry_after_s()
                    response = JSONResponse(
                        unavailable_body(
                            f"{dependency} is unavailable; retry shortly", retry_after, request_id
                        ),
                        status_code=503,
                        headers={"Retry-After": str(retry_after), "X-Request-ID": request_id},
                    )
                else:
                    response = JSONResponse(
                        {"error": "internal server error", "requestId": request_id},
                        status_code=500,
                        headers={"X-Request-ID": request_id},
                    )
                await response(scope, receive, send)
