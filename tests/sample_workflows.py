"""Workflows that exist only to exercise platform activities from inside a real workflow."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities, PublishEventsInput


@workflow.defn
class PublishThroughActivityWorkflow:
    @workflow.run
    async def run(self, request: PublishEventsInput) -> list[int]:
        return await workflow.execute_activity_method(
            EventActivities.publish_events, request, start_to_close_timeout=timedelta(seconds=30)
        )
