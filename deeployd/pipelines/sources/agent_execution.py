"""The `agent_execution` source: agent run events from the event log, routed into pipelines.

Agent runs publish Command Center events on stream `org:<orgId>`; every run
lifecycle event (`run:started`, `run:status_changed`, `run:completed`, `run:error`) carries `run`,
the run record. The source router (deeployd/pipelines/sources/router.py) reads those events after
its durable cursor and ingests, per matching pipeline, the item `{**run, "eventType": type}` with
dedup key `event:<eventId>` — so a re-read after a crash never appends an event twice.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field

from deeployd.agents import contract as cc
from deeployd.pipelines.sources.common import SourceModel, parse_source
from deeployd.pipelines.sources.plugin import SourceType, source_type

LIFECYCLE_TYPES = (
    cc.RUN_STARTED,
    cc.RUN_STATUS_CHANGED,
    cc.RUN_COMPLETED,
    cc.RUN_ERROR,
)
# Other Command Center run events a pipeline may opt into with `eventTypes` (they carry no `run`
# record; their item is the event's own fields).
OTHER_RUN_TYPES = (
    cc.RUN_PROGRESS,
    cc.RUN_TOOL_STARTED,
    cc.RUN_TOOL_COMPLETED,
    cc.RUN_LLM_CALL,
    cc.RUN_MEMORY_OP,
)
ROUTABLE_TYPES = LIFECYCLE_TYPES + OTHER_RUN_TYPES
# Every lifecycle transition of a run (queued->running, running<->input-required, ->completed,
# ->failed, ->cancelled) is published exactly once as `run:status_changed`; `run:started`,
# `run:completed` and `run:error` repeat some of those transitions. Routing all four by default
# would put a completed run into a pipeline twice (the docs' example would count every
# completion twice), so the default is the one type that covers each transition once.
DEFAULT_TYPES = (cc.RUN_STATUS_CHANGED,)

EventType = Literal[
    "run:started",
    "run:status_changed",
    "run:completed",
    "run:error",
    "run:progress",
    "run:tool_started",
    "run:tool_completed",
    "run:llm_call",
    "run:memory_op",
]
# The Literal above is what the API validates with (and names in its 422); it must list exactly
# the contract's routable types.
if set(get_args(EventType)) != set(ROUTABLE_TYPES):  # pragma: no cover - caught at import
    raise RuntimeError("agent_execution.EventType is out of step with the agents contract")


class AgentExecutionSource(SourceModel):
    type: Literal["agent_execution"]
    agent_ids: list[str] | None = Field(default=None, max_length=1000)
    event_types: list[EventType] | None = Field(default=None, min_length=1)


def validate(source: dict[str, Any]) -> None:
    parse_source(AgentExecutionSource, source)


@source_type("agent_execution")
class AgentExecution(SourceType):
    """Routed from the event log by the source router: nothing to set up."""

    def validate(self, source: dict[str, Any]) -> None:
        validate(source)


def item_for(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The pipeline item for one event: the run record (or the event's fields) plus eventType."""
    run = data.get("run")
    if isinstance(run, dict):
        item = {**run, "eventType": event_type}
        if "previousStatus" in data:
            item["previousStatus"] = data["previousStatus"]
        return item
    fields = {k: v for k, v in data.items() if k != "type"}
    return {**fields, "eventType": event_type}


def matches(source: dict[str, Any], event_type: str, data: dict[str, Any]) -> bool:
    wanted = source.get("eventTypes") or DEFAULT_TYPES
    if event_type not in wanted:
        return False
    agent_ids = source.get("agentIds")
    if agent_ids:
        run = data.get("run")
        agent = data.get("agentId") or (run.get("agentId") if isinstance(run, dict) else None)
        return agent in agent_ids
    return True
