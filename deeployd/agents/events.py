"""The shapes of run events and the helpers that publish them.

Two streams carry a run:
- `run:<runId>` — what a chat client renders: `token`, `tool_call`, `tool_result`,
  `approval_required`, `done`, `error`.
- `org:<orgId>` — the Command Center: `run:*` and `alert:*` events, each with `runId` and
  `agentId` at top level (alerts: `alert`). Lifecycle events (`run:started`,
  `run:status_changed`, `run:completed`, `run:error`) also carry `run`, the item shape of the
  pipelines' `agent_execution` source.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from deeployd.agents.contract import (
    ALERT_RESOLVED,
    ALERT_TRIGGERED,
    APPROVAL_REQUIRED,
    COMMAND_CENTER_TYPES,
    DONE,
    ERROR,
    RUN_COMPLETED,
    RUN_END_TYPES,
    RUN_ERROR,
    RUN_LLM_CALL,
    RUN_MEMORY_OP,
    RUN_PROGRESS,
    RUN_STARTED,
    RUN_STATUS_CHANGED,
    RUN_TOOL_COMPLETED,
    RUN_TOOL_STARTED,
    TOKEN,
    TOOL_CALL,
    TOOL_RESULT,
    RunFailed,
    RunStatusChanged,
    org_stream,
    run_stream,
)
from deeployd.eventlog import EventPublisher, StreamEnd

# The names are the contract's (deeployd.agents.contract); this module publishes them.
__all__ = [
    "ALERT_RESOLVED",
    "ALERT_TRIGGERED",
    "APPROVAL_REQUIRED",
    "COMMAND_CENTER_TYPES",
    "DONE",
    "ERROR",
    "RUN_COMPLETED",
    "RUN_END_TYPES",
    "RUN_ERROR",
    "RUN_LLM_CALL",
    "RUN_MEMORY_OP",
    "RUN_PROGRESS",
    "RUN_STARTED",
    "RUN_STATUS_CHANGED",
    "RUN_TOOL_COMPLETED",
    "RUN_TOOL_STARTED",
    "TOKEN",
    "TOOL_CALL",
    "TOOL_RESULT",
    "RunEvents",
    "announce_claimed",
    "announce_end",
    "org_stream",
    "run_end",
    "run_item",
    "run_stream",
    "usage_dict",
]


def run_end(run_id: str) -> StreamEnd:
    """How a run's chat stream ends: with its `done` or `error` event."""
    return StreamEnd(run_stream(run_id), RUN_END_TYPES, lambda event: event.type in RUN_END_TYPES)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def usage_dict(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt": prompt, "completion": completion, "total": prompt + completion}


def run_item(row: dict[str, Any]) -> dict[str, Any]:
    """A run row -> the `run` object of lifecycle events (the `agent_execution` item shape)."""
    return {
        "id": row["id"],
        "agentId": row["agent_id"],
        "agentName": row["agent_name"],
        "conversationId": row["conversation_id"],
        "status": row["status"],
        "tokenUsage": usage_dict(row["prompt_tokens"], row["completion_tokens"]),
        "cost": row["cost"],
        "startedAt": _iso(row.get("started_at")),
        "completedAt": _iso(row.get("completed_at")),
        "error": row.get("error"),
    }


class RunEvents:
    """Publishes one run's events; `publish_nowait` keeps token emission off the hot path."""

    def __init__(self, publisher: EventPublisher, org_id: str, run_id: str, agent_id: str) -> None:
        self.publisher = publisher
        self.org_id = org_id
        self.run_id = run_id
        self.agent_id = agent_id
        self._run_stream = run_stream(run_id)
        self._org_stream = org_stream(org_id)

    def chat(self, event_type: str, data: dict[str, Any]) -> asyncio.Future[int]:
        return self.publisher.publish_nowait(self.org_id, self._run_stream, event_type, data)

    def command_center(self, event_type: str, data: dict[str, Any]) -> asyncio.Future[int]:
        payload = {"runId": self.run_id, "agentId": self.agent_id, **data}
        return self.publisher.publish_nowait(self.org_id, self._org_stream, event_type, payload)

    async def flush(self) -> None:
        await self.publisher.flush()


async def announce_claimed(events: RunEvents, row: dict[str, Any]) -> None:
    """A queued run took its conversation: `run:started`, then `running` on the Command Center."""
    item = run_item(row)
    events.command_center(RUN_STARTED, {"run": item})
    events.command_center(
        RUN_STATUS_CHANGED,
        RunStatusChanged(status="running", previous_status="queued", run=item).data(),
    )
    await events.flush()


async def announce_end(
    events: RunEvents,
    row: dict[str, Any],
    previous_status: str,
    *,
    error: str | None = None,
    code: str | None = None,
    chat_error: str | None = None,
) -> None:
    """A run's end (its row already updated) on both streams: `done` or `error` ends its chat
    stream; the Command Center gets the status change and `run:completed` or `run:error`.
    `chat_error` is what the chat client reads when it differs from the stored error."""
    item = run_item(row)
    status = row["status"]
    if status == "completed":
        events.chat(DONE, {"usage": item["tokenUsage"], "cost": row["cost"]})
    else:
        events.chat(ERROR, {"message": chat_error or error or status, "code": code or status})
    events.command_center(
        RUN_STATUS_CHANGED,
        RunStatusChanged(status=status, previous_status=previous_status, run=item).data(),
    )
    if status == "completed":
        events.command_center(
            RUN_COMPLETED,
            {
                "result": row["result"],
                "usage": item["tokenUsage"],
                "cost": row["cost"],
                "run": item,
            },
        )
    elif status == "failed":
        events.command_center(RUN_ERROR, RunFailed.of(error, code, item).data())
    await events.flush()
