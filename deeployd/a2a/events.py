"""The `task:<taskId>` event-log stream: what the docs' REST stream serves as is, and what the
A2A bindings turn into `TaskStatusUpdateEvent` / `TaskArtifactUpdateEvent`.

Event data (the client receives `{**data, "type": type}`):
- `statusUpdate`  {taskId, contextId, state: "working", status: <A2A TaskStatus JSON>,
                   message: <A2A Message JSON> | null, final: bool}
- `artifactUpdate` {taskId, contextId, artifact: <A2A Artifact JSON>, chunk: str | null,
                   append: bool, lastChunk: bool}
  `artifact` holds this chunk's parts, except on the last chunk where it is the WHOLE artifact
  (so a reader may `finalizeArtifact(data.artifact)`); A2A clients get the chunk's parts.
- `message`       {taskId, contextId, message: <A2A Message JSON>} — a message of the exchange
                   (the caller's messages and the agent's questions).
"""

from __future__ import annotations

from typing import Any

from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    TaskArtifactUpdateEvent,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf.json_format import ParseDict

# The stream's names are the contract's; importers of this module find them here too.
from deeployd.a2a.contract import (  # noqa: F401
    ARTIFACT_UPDATE,
    INTERRUPTED_STATES,
    MESSAGE,
    STATUS_UPDATE,
    TASK,
    TASK_EVENT_TYPES,
    TERMINAL_STATES,
    task_stream,
)
from deeployd.a2a.store import iso, proto_state_name
from deeployd.eventlog import EventPublisher


def status_data(
    task_id: str,
    context_id: str,
    state: str,
    message: dict[str, Any] | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"state": proto_state_name(state), "timestamp": timestamp or iso(None)}
    if message is not None:
        status["message"] = message
    return {
        "taskId": task_id,
        "contextId": context_id,
        "state": state,
        "status": status,
        "message": message,
        "final": state in TERMINAL_STATES,
    }


def artifact_data(
    task_id: str,
    context_id: str,
    artifact: dict[str, Any],
    *,
    chunk: str | None,
    append: bool,
    last_chunk: bool,
) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "contextId": context_id,
        "artifact": artifact,
        "chunk": chunk,
        "append": append,
        "lastChunk": last_chunk,
    }


def message_data(task_id: str, context_id: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"taskId": task_id, "contextId": context_id, "message": message}


async def publish(
    publisher: EventPublisher, org_id: str, task_id: str, event_type: str, data: dict[str, Any]
) -> int:
    return await publisher.publish(org_id, task_stream(task_id), event_type, data)


def ends_stream(event_type: str, data: dict[str, Any]) -> bool:
    """A2A streams end at a terminal or interrupted state."""
    return event_type == STATUS_UPDATE and (
        data.get("state") in TERMINAL_STATES or data.get("state") in INTERRUPTED_STATES
    )


def to_a2a(
    event_type: str, data: dict[str, Any]
) -> TaskStatusUpdateEvent | TaskArtifactUpdateEvent | None:
    """A stored task event as the A2A stream event (None: not part of the A2A stream)."""
    if event_type == STATUS_UPDATE:
        status = ParseDict(data["status"], TaskStatus(), ignore_unknown_fields=True)
        return TaskStatusUpdateEvent(
            task_id=data["taskId"], context_id=data["contextId"], status=status
        )
    if event_type == ARTIFACT_UPDATE:
        artifact = ParseDict(data["artifact"], Artifact(), ignore_unknown_fields=True)
        if data.get("chunk") is not None:
            del artifact.parts[:]
            artifact.parts.append(Part(text=data["chunk"]))
        return TaskArtifactUpdateEvent(
            task_id=data["taskId"],
            context_id=data["contextId"],
            artifact=artifact,
            append=bool(data.get("append")),
            last_chunk=bool(data.get("lastChunk")),
        )
    return None


def message_proto(data: dict[str, Any]) -> Message:
    return ParseDict(data, Message(), ignore_unknown_fields=True)
