"""`deeployd.Client`: the Python SDK over the HTTP API."""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from deeployd.sdk.a2a import A2ATasks
from deeployd.sdk.agents import Agents
from deeployd.sdk.command_center import CommandCenter
from deeployd.sdk.conversations import Conversations
from deeployd.sdk.resource import ApiError, api_error
from deeployd.sdk.runs import Runs
from deeployd.sdk.sse import EventStream, StreamEvent
from deeployd.sdk.streaming import Streaming
from deeployd.sdk.voice import VoiceApi


class Client:
    """Async client. Use as `async with deeployd.Client(base_url, api_key) as client:`."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            # No cookies: the key is the credential and streams track their own resume points
            # (a stream cookie would make a new read of an ended run look like a reconnect).
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        )
        self.voice = VoiceApi(self)
        self.agents, self.conversations = Agents(self), Conversations(self)
        self.runs, self.command_center = Runs(self), CommandCenter(self)
        self.streaming = Streaming(self)
        self.a2a = A2ATasks(self)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise api_error(response.status_code, response.content)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def stream(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        last_event_id: int | None = None,
        stop_types: frozenset[str] = frozenset(),
        max_attempts: int | None = None,
    ) -> EventStream:
        """A reconnecting, resumable SSE reader over any stream endpoint."""
        return EventStream(
            self.http,
            path,
            params=params,
            last_event_id=last_event_id,
            stop_types=stop_types,
            max_attempts=max_attempts,
        )

    # --- the foundation's resources -------------------------------------------------------

    async def me(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/api/me")
        return result

    async def create_api_key(self, name: str, scopes: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if scopes is not None:
            body["scopes"] = scopes
        result: dict[str, Any] = await self.request("POST", "/api/keys", json=body)
        return result

    async def put_secret(self, name: str, value: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", "/api/secrets", json={"name": name, "value": value}
        )
        return result

    def events(
        self,
        *,
        streams: list[str] | None = None,
        types: list[str] | None = None,
        last_event_id: int | None = None,
    ) -> EventStream:
        params = {}
        if streams:
            params["streams"] = ",".join(streams)
        if types:
            params["types"] = ",".join(types)
        return self.stream("/api/events/stream", params=params, last_event_id=last_event_id)


__all__ = ["ApiError", "Client", "StreamEvent"]
