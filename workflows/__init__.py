"""Temporal workflows. `WORKFLOWS` is what the worker registers."""

from workflows.retention import EventRetentionWorkflow

WORKFLOWS: list[type] = [EventRetentionWorkflow]
