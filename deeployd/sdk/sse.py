"""A reconnecting Server-Sent Events reader, doing what the product docs ask of clients:
exponential backoff capped at 30 s, resume with `Last-Event-ID`, parsed events from an
async iterator."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event: its log id (None for control frames) and its JSON data (always has `type`)."""

    id: int | None
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data.get("type", ""))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class StreamClosed(Exception):
    """The server ended the stream with an error the reader should not retry."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"stream refused with HTTP {status}: {body}")
        self.status = status


async def parse_sse(
    lines: AsyncIterator[str],
) -> AsyncIterator[tuple[str | None, str | None, int | None]]:
    """Yield (id, data, retry) per dispatched event, following the WHATWG parsing rules."""
    event_id: str | None = None
    data: list[str] = []
    retry: int | None = None
    async for raw in lines:
        line = raw.rstrip("\r")
        if line == "":
            if data or retry is not None:
                yield event_id, "\n".join(data) if data else None, retry
            event_id, data, retry = None, [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)


class EventStream:
    """Async iterator over a resumable SSE endpoint that reconnects on its own."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        path: str,
        *,
        params: dict[str, str] | None = None,
        last_event_id: int | None = None,
        max_backoff: float = 30.0,
        max_attempts: int | None = None,
        stop_types: frozenset[str] = frozenset(),
    ) -> None:
        self._http = http
        self._path = path
        self._params = params or {}
        self.last_event_id = last_event_id
        self._max_backoff = max_backoff
        self._max_attempts = max_attempts
        self._stop_types = stop_types
        self._closed = False
        self._response: httpx.Response | None = None
        self.reconnects = 0

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._iterate()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        if self._response is not None:
            await self._response.aclose()

    async def _iterate(self) -> AsyncIterator[StreamEvent]:
        attempt = 0
        while not self._closed:
            headers = {"Accept": "text/event-stream"}
            if self.last_event_id is not None:
                headers["Last-Event-ID"] = str(self.last_event_id)
            try:
                async with self._http.stream(
                    "GET",
                    self._path,
                    params=self._params,
                    headers=headers,
                    timeout=httpx.Timeout(10, read=None),
                ) as response:
                    self._response = response
                    if response.status_code in (401, 403, 404, 422):
                        body = (await response.aread()).decode(errors="replace")
                        raise StreamClosed(response.status_code, body)
                    response.raise_for_status()
                    if response.status_code == 204:
                        self._closed = True  # the stream has ended: nothing more will come
                        return
                    attempt = 0  # connected: the backoff starts over
                    async for event_id, data, _retry in parse_sse(response.aiter_lines()):
                        if data is None:
                            continue
                        event = StreamEvent(int(event_id) if event_id else None, json.loads(data))
                        if event.id is not None:
                            self.last_event_id = event.id
                        yield event
                        if event.type in self._stop_types:
                            self._closed = True
                            return
                        if event.id is None and event.get("code") == "slow_consumer":
                            break  # reconnect at once and resume from last_event_id
            except StreamClosed:
                raise
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                if self._closed:
                    return
                log.info("stream %s interrupted: %s", self._path, exc)
            finally:
                self._response = None
            if self._closed:
                return
            attempt += 1
            self.reconnects += 1
            if self._max_attempts is not None and attempt > self._max_attempts:
                raise ConnectionError(f"gave up on {self._path} after {attempt - 1} reconnects")
            # Exponential backoff capped at 30 s, as in the docs' createReconnectingEventSource.
            await asyncio.sleep(
                min(0.5 * 2 ** (attempt - 1), self._max_backoff) if attempt > 1 else 0.1
            )
