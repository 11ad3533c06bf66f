"""Periodic re-evaluation of windowed alert rules, run by a Temporal Schedule.

Run ends, rule changes and alert listings evaluate rules too; this sweep is what lets a windowed
rule (e.g. "failed runs in the last 5 minutes") resolve when nothing else happens.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from deeployd.agents import contract
    from deeployd.agents.contract import SweepAlertsInput


@workflow.defn(name=contract.ALERT_SWEEP_WORKFLOW)
class AlertSweepWorkflow:
    @workflow.run
    async def run(self, request: SweepAlertsInput) -> int:
        return await workflow.execute_activity(
            contract.SWEEP_ALERT_RULES,
            request,
            result_type=int,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
