"""Request accounting as pure ASGI middleware (safe for streaming responses)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deeployd import metrics

log = logging.getLogger("deeployd.access")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    route: str
    status: int
    latency_ms: float
    org_id: str | None
    key_prefix: str | None
    ts: float


RequestObserver = Callable[[RequestRecord], None]


class RequestMetricsMiddleware:
    """Counts requests, times them to the response headers, and tells registered observers."""

    def __init__(self, app: ASGIApp, observers: list[RequestObserver]) -> None:
        self.app = app
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
