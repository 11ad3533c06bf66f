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

from deeployd.eventlog import EventPublisher, StreamEnd

# Chat-level events on `run:<runId>`.
TOKEN = "token"
TOOL_CALL = "tool_call"
TOOL_RESULT = "tool_result"
APPROVAL_REQUIRED = "approval_required"
DONE = "done"
ERROR = "error"
RUN_END_TYPES = frozenset({DONE, ERROR})

# Command Center events on `org:<orgId>`.
RUN_STARTED = "run:started"
RUN_STATUS_CHANGED = "run:status_changed"
RUN_PROGRESS = "run:progress"
RUN_TOOL_STARTED = "run:tool_started"
RUN_TOOL_COMPLETED = "run:tool_completed"
RUN_LLM_CALL = "run:llm_call"
RUN_MEMORY_OP = "run:memory_op"
RUN_ERROR = "run:error"
RUN_COMPLETED = "run:completed"
ALERT_TRIGGERED = "alert:triggered"
ALERT_RESOLVED = "alert:resolved"
COMMAND_CENTER_TYPES = frozenset(
    {
        RUN_STARTED,
        RUN_STATUS_CHANGED,
        RUN_PROGRESS,
        RUN_TOOL_STARTED,
        RUN_TOOL_COMPLETED,
        RUN_LLM_CALL,
        RUN_MEMORY_OP,
        RUN_ERROR,
        RUN_COMPLETED,
        ALERT_TRIGGERED,
        ALERT_RESOLVED,
    }
)


def run_stream(run_id: str) -> str:
    return f"run:{run_id}"


def run_end(run_id: str) -> StreamEnd:
    """How a run's chat stream ends: with its `done` or `error` event."""
    return StreamEnd(run_stream(run_id), RUN_END_TYPES, lambda event: event.type in RUN_END_TYPES)


def org_stream(org_id: str) -> str:
    return f"org:{org_id}"


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
