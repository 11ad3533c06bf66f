"""Calling a remote A2A agent with the official a2a-sdk client (used by `call_agent` and tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, TransportProtocol
from google.protobuf.json_format import MessageToDict

from deeployd.a2a.store import new_message_id, state_from_proto

CARD_SUFFIX = AGENT_CARD_WELL_KNOWN_PATH  # '/.well-known/agent-card.json'
# What is kept of a remote agent's output (the model reads it).
MAX_DATA_PARTS = 20
MAX_ARTIFACTS = 20


def split_card_url(url: str) -> tuple[str, str | None]:
    """(base URL, relative card path) for a base URL or a full card URL."""
    if url.endswith(CARD_SUFFIX):
        return url[: -len(CARD_SUFFIX)], None
    if url.endswith(".json"):
        base, _, name = url.rpartition("/")
        return base, name
    return url.rstrip("/"), None


async def call_remote_agent(
    url: str,
    text: str,
    *,
    headers: dict[str, str] | None = None,
    on_progress: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    timeout_s: float = 300.0,
    max_text: int = 20_000,
    check_url: Callable[[str], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Send `text` as a new task and follow it until it ends or needs input.

    Returns {taskId, contextId, state, message, artifacts: [{name, text | data}]}.
    """
    base, card_path = split_card_url(url)
    async with httpx.AsyncClient(headers=headers or {}, timeout=timeout_s) as http:
        factory = ClientFactory(
            ClientConfig(
                httpx_client=http,
                streaming=True,
                supported_protocol_bindings=[
                    TransportProtocol.JSONRPC,
                    TransportProtocol.HTTP_JSON,
                ],
            )
        )
        card = await A2ACardResolver(http, base).get_agent_card(relative_card_path=card_path)
        if check_url is not None:
            # The card names the endpoints to call: they are outbound URLs like any other.
            for interface in card.supported_interfaces:
                await check_url(interface.url)
        client = factory.create(card)
        request = SendMessageRequest(
            message=Message(
                message_id=new_message_id(), role=Role.ROLE_USER, parts=[Part(text=text)]
            )
        )
        state = "submitted"
        task_id = context_id = ""
        status_text = ""
        artifacts: dict[str, dict[str, Any]] = {}
        order: list[str] = []

        async def follow() -> None:
            nonlocal state, task_id, context_id, status_text
            async for response in client.send_message(request):
                kind = response.WhichOneof("payload")
                if kind == "task":
                    task_id, context_id = response.task.id, response.task.context_id
                    state = state_from_proto(response.task.status.state)
                elif kind == "status_update":
                    status = response.status_update
                    task_id, context_id = status.task_id, status.context_id
                    state = state_from_proto(status.status.state)
                    status_text = " ".join(p.text for p in status.status.message.parts if p.text)
                    if on_progress:
                        await on_progress(
                            {"remoteTaskId": task_id, "state": state, "message": status_text}
                        )
                elif kind == "artifact_update":
                    update = response.artifact_update
                    art = update.artifact
                    entry = artifacts.get(art.artifact_id)
                    if entry is None and len(artifacts) >= MAX_ARTIFACTS:
                        continue
                    if entry is None or not update.append:
                        entry = {"name": art.name, "text": "", "data": []}
                        artifacts[art.artifact_id] = entry
                        if art.artifact_id not in order:
                            order.append(art.artifact_id)
                    for part in art.parts:
                        if part.text:
                            entry["text"] = (entry["text"] + part.text)[:max_text]
                        elif part.HasField("data") and len(entry["data"]) < MAX_DATA_PARTS:
                            entry["data"].append(MessageToDict(part.data))
                    if on_progress and update.last_chunk:
                        await on_progress(
                            {"remoteTaskId": task_id, "artifact": art.name, "lastChunk": True}
                        )
                elif kind == "message":
                    status_text = " ".join(p.text for p in response.message.parts if p.text)
                    state = "completed"

        try:
            await asyncio.wait_for(follow(), timeout=timeout_s)
        finally:
            await client.close()
    out_artifacts = []
    for artifact_id in order:
        entry = artifacts[artifact_id]
        item: dict[str, Any] = {"name": entry["name"]}
        if entry["text"]:
            item["text"] = entry["text"]
        if entry["data"]:
            item["data"] = entry["data"]
        out_artifacts.append(item)
    return {
        "taskId": task_id,
        "contextId": context_id,
        "state": state,
        "message": status_text[:max_text],
        "artifacts": out_artifacts,
    }
