"""Temporal activities. Each family is a class built once in the worker with the clients it needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.a2a import A2AActivities
from activities.agent_runs import AgentRunActivities
from activities.events import EventActivities
from activities.pipeline_sources import SourceActivities
from activities.pipelines import PipelineActivities
from deeployd.services import Services


def build_activities(services: Services) -> list[Callable[..., Any]]:
    """Every activity the worker serves, bound to this process's shared clients."""
    events = EventActivities(services)
    agent_runs = AgentRunActivities(services)
    pipelines = PipelineActivities(services)
    sources = SourceActivities(services)
    # The A2A activities run a task's agent work through the same instance: one cancel listener.
    a2a = A2AActivities(services, runs=agent_runs)
    return [
        events.publish_events,
        events.prune_events,
        agent_runs.claim_run,
        agent_runs.call_model,
        agent_runs.execute_tool,
        agent_runs.set_status,
        agent_runs.finish_run,
        agent_runs.sweep_alert_rules,
        pipelines.process_batch,
        pipelines.save_checkpoint,
        pipelines.save_state,
        pipelines.set_status,
        pipelines.replay_dead_letters,
        sources.current_event_cursor,
        sources.route_sources,
        sources.schedule_tick,
        a2a.begin_task,
        a2a.model_turn,
        a2a.tool_call,
        a2a.set_state,
        a2a.push_notify,
    ]
