"""a2a-sdk `TaskStore` and `PushNotificationConfigStore` over the platform's Postgres.

Both are organisation-scoped: the org comes from the call context our route wrapper builds
from the caller's API key (`context.state["org_id"]`), so another org's task is "not found".
Tasks are written by the task's workflow (its activities), so `save` is only for the SDK's
generic paths; it updates state, status message, history and artifacts of an existing row.
"""

from __future__ import annotations

from datetime import UTC

from a2a.server.context import ServerCallContext
from a2a.server.tasks import PushNotificationConfigStore, TaskStore
from a2a.server.tasks.push_notification_config_store import normalize_push_notification_config
from a2a.types.a2a_pb2 import ListTasksRequest, ListTasksResponse, Task, TaskPushNotificationConfig
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict

from deeployd.a2a import store
from deeployd.services import Services


def org_of(context: ServerCallContext) -> str:
    org_id = context.state.get("org_id")
    if not org_id:  # never reached through our routes, which authenticate first
        raise PermissionError("no organisation in the call context")
    return str(org_id)


def agent_of(context: ServerCallContext) -> str | None:
    agent_id = context.state.get("agent_id")
    return str(agent_id) if agent_id else None


class PostgresTaskStore(TaskStore):
    def __init__(self, services: Services) -> None:
        self._services = services

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        row = await store.get_task(self._services.db.pool, org_of(context), task_id)
        if row is None:
            return None
        return store.row_to_task(row)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        org_id = org_of(context)
        body = MessageToDict(task)
        status = body.get("status", {})
        await store.update_task(
            self._services.db.pool,
            org_id,
            task.id,
            state=store.state_from_proto(task.status.state),
            status_message=status.get("message"),
            clear_status_message="message" not in status,
            append_history=body.get("history") or None,
        )
        for artifact in body.get("artifacts", []):
            await store.update_task(self._services.db.pool, org_id, task.id, artifact=artifact)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        page_size = (
            params.page_size if params.HasField("page_size") else DEFAULT_LIST_TASKS_PAGE_SIZE
        )
        state = store.state_from_proto(params.status) if params.status else None
        updated_after = (
            params.status_timestamp_after.ToDatetime(tzinfo=UTC)
            if params.HasField("status_timestamp_after")
            else None
        )
        try:
            rows, next_token, total = await store.list_tasks(
                self._services.db.pool,
                org_of(context),
                agent_id=agent_of(context),
                context_id=params.context_id or None,
                state=state,
                updated_after=updated_after,
                page_size=page_size,
                page_token=params.page_token or None,
            )
        except (ValueError, TypeError):
            raise InvalidParamsError(message="invalid pageToken") from None
        history_length = params.history_length if params.HasField("history_length") else None
        return ListTasksResponse(
            tasks=[
                store.row_to_task(
                    row,
                    history_length=history_length,
                    include_artifacts=params.include_artifacts,
                )
                for row in rows
            ],
            next_page_token=next_token or "",
            page_size=page_size,
            total_size=total,
        )

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        await store.delete_task(self._services.db.pool, org_of(context), task_id)


class PostgresPushConfigStore(PushNotificationConfigStore):
    def __init__(self, services: Services) -> None:
        self._services = services

    async def set_info(
        self,
        task_id: str,
        notification_config: TaskPushNotificationConfig,
        context: ServerCallContext,
    ) -> TaskPushNotificationConfig | None:
        config = normalize_push_notification_config(task_id, notification_config)
        row = await store.set_push_config(self._services.db.pool, org_of(context), config)
        return store.push_config_proto(row)

    async def get_info(
        self, task_id: str, context: ServerCallContext
    ) -> list[TaskPushNotificationConfig]:
        rows = await store.push_configs(self._services.db.pool, org_of(context), task_id)
        return [store.push_config_proto(row) for row in rows]

    async def get_info_for_dispatch(self, task_id: str) -> list[TaskPushNotificationConfig]:
        # Dispatch happens in the task's workflow (activities.a2a.push_notify), not here.
        raise NotImplementedError("push notifications are delivered by the task's workflow")

    async def delete_info(
        self, task_id: str, context: ServerCallContext, config_id: str | None = None
    ) -> None:
        await store.delete_push_config(
            self._services.db.pool, org_of(context), task_id, config_id or task_id
        )
