"""The a2a-sdk `RequestHandler` of our agents: every A2A method, on durable workflows.

The SDK's `DefaultRequestHandler` runs an `AgentExecutor` inside the server process and keeps
live tasks in memory; our tasks run in Temporal workers and survive API and worker restarts, so
this handler is the bridge: a new message starts an `A2ATaskWorkflow`, a message for a waiting
task is a workflow update, cancel cancels the workflow, and streams are read from the task's
event-log stream (`task:<taskId>`), which any API replica can tail. The SDK's routes, JSON-RPC
and HTTP+JSON dispatchers, 0.3 compatibility adapters and serialisation do the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import RequestHandler
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length, validate_history_length
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client as TemporalClient

from deeployd.a2a import events as tev
from deeployd.a2a import service, store
from deeployd.a2a.contract import TERMINAL_STATES
from deeployd.a2a.stores import PostgresPushConfigStore, PostgresTaskStore, agent_of, org_of
from deeployd.netguard import UnsafeURLError, check_outbound_url
from deeployd.orgs import KeyLiveness
from deeployd.revocation import KEY_RECHECK_SECONDS, KeyRevoked, revocable
from deeployd.services import Services
from deeployd.storable import find_unstorable

# A blocking SendMessage answers at the latest after this long (with the task as it is then).
BLOCKING_WAIT_S = 600.0
# A message is stored in the task's history and handed to the model: bounded.
MAX_MESSAGE_BYTES = 1_000_000


class DeeploydRequestHandler(RequestHandler):
    def __init__(self, get_services: Callable[[], Services]) -> None:
        self._get_services = get_services
        self._key_check: KeyLiveness | None = None

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def services(self) -> Services:
        return self._get_services()

    def _temporal(self) -> TemporalClient:
        client = self.services.temporal
        if client is None:
            raise InternalError(message="Temporal is not reachable yet; try again")
        return client

    async def _row(self, task_id: str, context: ServerCallContext) -> dict[str, Any]:
        row = await store.get_task(self.services.db.pool, org_of(context), task_id)
        if row is None or (agent_of(context) and row["agent_id"] != agent_of(context)):
            raise TaskNotFoundError(message=f"task {task_id} not found")
        return row

    async def _cursor(self, org_id: str, task_id: str) -> int:
        """The id of the task stream's newest event (0 when it has none)."""
        async with self.services.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT coalesce(max(id), 0) FROM events WHERE org_id = %s AND stream = %s",
                (org_id, tev.task_stream(task_id)),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _push_url_allowed(self, url: str) -> None:
        try:
            await check_outbound_url(url, allow_private=self.services.settings.allow_private_urls)
        except UnsafeURLError as exc:
            raise InvalidParamsError(message=f"push notification url refused: {exc}") from None

    async def _submit(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> tuple[dict[str, Any], int]:
        """Start a task or deliver a follow-up; returns (task row, stream cursor before it)."""
        org_id = org_of(context)
        agent_id = agent_of(context)
        validate_history_length(params.configuration)
        if not params.message.parts:
            raise InvalidParamsError(message="message.parts must not be empty")
        if params.message.ByteSize() > MAX_MESSAGE_BYTES:
            raise InvalidParamsError(message=f"message is larger than {MAX_MESSAGE_BYTES} bytes")
        message = MessageToDict(params.message)
        unstorable = find_unstorable(message, ("message",))
        if unstorable is not None:  # the task's history is jsonb
            where, problem = unstorable
            raise InvalidParamsError(message=f"{'.'.join(map(str, where))}: {problem}")
        push = None
        if params.configuration.HasField("task_push_notification_config"):
            push = params.configuration.task_push_notification_config
            await self._push_url_allowed(push.url)
        try:
            if params.message.task_id:
                row = await self._row(params.message.task_id, context)
                if params.message.context_id and params.message.context_id != row["context_id"]:
                    raise InvalidParamsError(
                        message=f"context {params.message.context_id} does not match the task's"
                    )
                cursor = await self._cursor(org_id, row["id"])
                if push is not None:
                    await self._save_push(row["id"], push, context)
                await service.send_follow_up(
                    self.services, self._temporal(), org_id, row["id"], message
                )
                return row, cursor
            if agent_id is None:
                raise InvalidParamsError(message="no agent addressed")
            row = await service.create_task(
                self.services,
                self._temporal(),
                org_id,
                agent_id,
                message,
                context_id=params.message.context_id or None,
                before_start=(
                    (lambda task_id: self._save_push(task_id, push, context))
                    if push is not None
                    else None
                ),
            )
            return row, await self._cursor(org_id, row["id"])
        except service.AgentNotFound:
            raise InvalidParamsError(message="agent not found") from None
        except service.TaskNotFound as exc:
            raise TaskNotFoundError(message=exc.message) from None
        except service.NotWaitingForInput as exc:
            raise UnsupportedOperationError(message=exc.message) from None
        except service.Unavailable as exc:
            raise InternalError(message=exc.message) from None

    async def _save_push(
        self, task_id: str, config: TaskPushNotificationConfig, context: ServerCallContext
    ) -> None:
        stored = TaskPushNotificationConfig()
        stored.CopyFrom(config)
        stored.task_id = task_id
        await PostgresPushConfigStore(self.services).set_info(task_id, stored, context)

    async def _updates(
        self, org_id: str, task_id: str, after: int, key_id: str | None = None
    ) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
        """The task's events after `after`, until a terminal or interrupted status update; a
        stream opened with `key_id` ends with an error once that key is revoked."""
        events: AsyncIterator[Any] = service.tail(self.services, org_id, task_id, after=after)
        if key_id:
            if self._key_check is None:
                self._key_check = KeyLiveness(self.services.db.pool)
            events = revocable(events, key_id, self._key_check, KEY_RECHECK_SECONDS)
        try:
            async for event in events:
                data = event.data()
                yield event.type, data
                if tev.ends_stream(event.type, data):
                    return
        except KeyRevoked:
            raise InvalidRequestError(message="the API key was revoked") from None
        finally:
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()

    def _task(self, row: dict[str, Any], config: Any = None) -> Task:
        return apply_history_length(store.row_to_task(row), config)

    # --- messages -------------------------------------------------------------------------------

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        org_id = org_of(context)
        row, cursor = await self._submit(params, context)
        if not params.configuration.return_immediately:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BLOCKING_WAIT_S):
                    async for _ in self._updates(org_id, row["id"], cursor):
                        pass
        row = await self._row(row["id"], context)
        return self._task(row, params.configuration)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        org_id = org_of(context)
        row, cursor = await self._submit(params, context)
        yield self._task(await self._row(row["id"], context), params.configuration)
        key_id = context.state.get("key_id")
        async for event_type, data in self._updates(org_id, row["id"], cursor, key_id):
            event = tev.to_a2a(event_type, data)
            if event is not None:
                yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        org_id = org_of(context)
        cursor = await self._cursor(org_id, params.id)
        row = await self._row(params.id, context)
        if row["state"] in TERMINAL_STATES:
            raise UnsupportedOperationError(
                message=f"Task {params.id} is in terminal state: {row['state']}"
            )
        yield self._task(row)
        key_id = context.state.get("key_id")
        async for event_type, data in self._updates(org_id, params.id, cursor, key_id):
            event = tev.to_a2a(event_type, data)
            if event is not None:
                yield event

    # --- tasks ----------------------------------------------------------------------------------

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        if params.HasField("history_length") and params.history_length < 0:
            raise InvalidParamsError(message="historyLength must be non-negative")
        return self._task(await self._row(params.id, context), params)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        if params.HasField("page_size") and not 1 <= params.page_size <= 100:
            raise InvalidParamsError(message="pageSize must be between 1 and 100")
        if params.HasField("history_length") and params.history_length < 0:
            raise InvalidParamsError(message="historyLength must be non-negative")
        return await PostgresTaskStore(self.services).list(params, context)

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        row = await self._row(params.id, context)
        try:
            row = await service.cancel_task(
                self.services, self._temporal(), org_of(context), row["id"]
            )
        except service.NotCancelable as exc:
            raise TaskNotCancelableError(message=exc.message) from None
        return self._task(row)

    # --- push notifications -------------------------------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        await self._row(params.task_id, context)
        await self._push_url_allowed(params.url)
        result = await PostgresPushConfigStore(self.services).set_info(
            params.task_id, params, context
        )
        assert result is not None
        return result

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        await self._row(params.task_id, context)
        for config in await PostgresPushConfigStore(self.services).get_info(
            params.task_id, context
        ):
            if config.id == params.id:
                return config
        raise TaskNotFoundError(message=f"push notification config {params.id} not found")

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        await self._row(params.task_id, context)
        configs = await PostgresPushConfigStore(self.services).get_info(params.task_id, context)
        return ListTaskPushNotificationConfigsResponse(configs=configs)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        await self._row(params.task_id, context)
        await PostgresPushConfigStore(self.services).delete_info(params.task_id, context, params.id)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError
