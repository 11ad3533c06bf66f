"""Temporal workflows. `WORKFLOWS` is what the worker registers."""

from workflows.a2a_task import A2ATaskWorkflow
from workflows.agent_run import AgentRunWorkflow
from workflows.alerts import AlertSweepWorkflow
from workflows.pipeline import PipelineWorkflow
from workflows.pipeline_sources import PipelineScheduleTickWorkflow, SourceRouterWorkflow
from workflows.retention import EventRetentionWorkflow

WORKFLOWS: list[type] = [
    EventRetentionWorkflow,
    AgentRunWorkflow,
    AlertSweepWorkflow,
    PipelineWorkflow,
    SourceRouterWorkflow,
    PipelineScheduleTickWorkflow,
    A2ATaskWorkflow,
]
