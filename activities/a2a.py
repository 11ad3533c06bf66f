"""Activities of an A2A task: set up the task's agent run, run model turns and tools through the
agent-run activities (teeing tokens and tool results into artifact chunks on `task:<taskId>`),
move the task's state, and deliver push notifications.

The task's row and its stream change together in each activity: the row first (what GetTask
and a resubscribing client see), then the event (what live readers see).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from psycopg.rows import dict_row
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_runs import AgentRunActivities
from deeployd.a2a import contract, store
from deeployd.a2a import events as tev
from deeployd.a2a.chunks import ANSWER_ARTIFACT_NAME, ArtifactChunker
from deeployd.a2a.tools import ASK_USER
from deeployd.agents import contract as runs
from deeployd.agents import store as run_store
from deeployd.eventlog import EventFilter, read_events
from deeployd.ids import new_id
from deeployd.netguard import UnsafeURLError, check_outbound_url
from deeployd.services import Services

log = logging.getLogger(__name__)


PUSH_TIMEOUT_S = 10.0
PUSH_BATCH = 500


class A2AActivities:
    """Built once in the worker. Uses the database pool, the event publisher, the outbound-URL
    setting and the agent-run activities (whose work a task's agent run is)."""

    def __init__(self, services: Services, runs: AgentRunActivities) -> None:
        self._pool = services.db.pool
        self._publisher = services.publisher
        self._allow_private_urls = services.settings.allow_private_urls
        self._http: httpx.AsyncClient | None = None
        # The worker's agent-run activities (and their one cancel listener), run in-process: the
        # task's artifacts are fed from the tokens and tool results they hand over.
        self._runs = runs

    # --- set-up -------------------------------------------------------------------------------

    @activity.defn(name=contract.BEGIN_TASK)
    async def begin_task(self, request: contract.BeginTaskInput) -> contract.TaskPlan:
        """Create the task's conversation, run and user message (once), and move to working."""
        ref = request.task
        row = await store.get_task(self._pool, ref.org_id, ref.task_id)
        if row is None:
            raise ApplicationError(
                "the task row is gone", type="task_not_found", non_retryable=True
            )
        agent = await run_store.get_agent(self._pool, ref.org_id, ref.agent_id)
        if agent is None:
            return contract.TaskPlan(rejected=True, reason="the agent no longer exists")
        run_id = row["run_id"]
        conversation_id = row["conversation_id"]
        if run_id is None:  # first attempt (a retry finds the run it created)
            run_id, conversation_id = await self._create_run(ref, row, agent)
        run = runs.RunRef(
            run_id=run_id, org_id=ref.org_id, agent_id=ref.agent_id, conversation_id=conversation_id
        )
        state = await self._set_state(ref, "working")
        claim = await self._runs.claim_run(runs.ClaimRunInput(run=run))
        return contract.TaskPlan(
            run=run,
            claimed=claim.claimed,
            approval_required=list(agent["approval_required"] or []),
            has_push=state.has_push,
        )

    async def _create_run(
        self, ref: contract.TaskRef, row: dict[str, Any], agent: dict[str, Any]
    ) -> tuple[str, str]:
        """The agent-run rows this task drives: a run in a conversation of the task's context.

        A context's conversation is reused while none of its runs is active, so a follow-up
        task in the same context sees the earlier exchange; otherwise the task gets its own.
        """
        run_id = new_id("run")
        message_id = new_id("msg")
        content = store.message_text(row["history"][0]) if row["history"] else ""
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT t.conversation_id FROM a2a_tasks t JOIN conversations c "
                "ON c.id = t.conversation_id WHERE t.org_id = %s AND t.context_id = %s "
                "AND t.conversation_id IS NOT NULL AND c.agent_id = %s "
                "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.conversation_id = c.id "
                "  AND r.status = ANY(%s)) "
                "ORDER BY t.created_at DESC LIMIT 1",
                (ref.org_id, ref.context_id, ref.agent_id, list(runs.ACTIVE)),
            )
            existing = await cur.fetchone()
            if existing is not None:
                conversation_id = existing["conversation_id"]
            else:
                conversation_id = new_id("conv")
                await cur.execute(
                    "INSERT INTO conversations (id, org_id, agent_id, title, multitask, "
                    "created_at, updated_at) VALUES (%s, %s, %s, %s, 'enqueue', now(), now())",
                    (conversation_id, ref.org_id, ref.agent_id, f"A2A context {ref.context_id}"),
                )
            await run_store.insert_run_with_message(
                conn,
                org_id=ref.org_id,
                run_id=run_id,
                message_id=message_id,
                agent_id=ref.agent_id,
                agent_name=agent["name"],
                conversation_id=conversation_id,
                content=content,
                workflow_id=row["workflow_id"],
                claimed=False,  # the task's first claim takes the conversation
            )
            await cur.execute(
                "UPDATE a2a_tasks SET run_id = %s, conversation_id = %s WHERE id = %s "
                "AND org_id = %s",
                (run_id, conversation_id, ref.task_id, ref.org_id),
            )
        return run_id, conversation_id

    # --- the agent's work ---------------------------------------------------------------------

    @activity.defn(name=contract.MODEL_TURN)
    async def model_turn(self, request: contract.ModelTurnInput) -> runs.ModelTurn:
        """One model call of the run, its tokens also streamed as chunks of the answer artifact."""
        ref = request.task
        chunker = ArtifactChunker(
            self._publisher,
            org_id=ref.org_id,
            task_id=ref.task_id,
            context_id=ref.context_id,
            artifact_id=request.artifact_id,
            # A retried call appends to what the failed attempt already published.
            started=request.answer_started or activity.info().attempt > 1,
        )

        try:
            return await self._runs.stream_model_turn(request.call, on_token=chunker.add)
        finally:
            chunker.flush()
            await self._publisher.flush()

    @activity.defn(name=contract.TOOL_CALL)
    async def tool_call(self, request: contract.ToolCallInput) -> runs.ToolOutcome:
        """Run one tool through the agent-run activity; its result becomes a data artifact."""
        ref = request.task
        call = request.call.call
        publisher = self._publisher

        def on_result(result: Any) -> None:
            if call.name == ASK_USER or request.call.decision in ("rejected", "failed"):
                return
            artifact = {
                "artifactId": f"tool-{call.id}",
                "name": f"tool:{call.name}",
                "parts": [{"data": _json_value(result)}],
                "metadata": {"toolCallId": call.id, "tool": call.name},
            }
            publisher.publish_nowait(
                ref.org_id,
                tev.task_stream(ref.task_id),
                tev.ARTIFACT_UPDATE,
                tev.artifact_data(
                    ref.task_id,
                    ref.context_id,
                    artifact,
                    chunk=None,
                    append=False,
                    last_chunk=True,
                ),
            )
            pending_artifacts.append(artifact)

        pending_artifacts: list[dict[str, Any]] = []
        outcome = await self._runs.run_tool_call(request.call, on_result=on_result)
        for artifact in pending_artifacts:
            await store.update_task(self._pool, ref.org_id, ref.task_id, artifact=artifact)
        await publisher.flush()
        return outcome

    # --- state --------------------------------------------------------------------------------

    @activity.defn(name=contract.SET_STATE)
    async def set_state(self, request: contract.SetStateInput) -> contract.StateResult:
        """Move the task's state (and the run's status, or end the run, alongside).

        An update that finds the task already ended writes nothing, so the run's final status
        is never overwritten by a stale `running` / `input-required`. (The workflow also never
        runs two of these at once for a task: see `A2ATaskWorkflow._activity`.)
        """
        ref = request.task
        row = await store.get_task(self._pool, ref.org_id, ref.task_id)
        if row is not None and row["state"] in contract.TERMINAL_STATES:
            return contract.StateResult(has_push=False, changed=False, already_ended=True)
        if request.finish_run is not None:
            await self._runs.finish_run(request.finish_run)
        result = await self._set_state(
            ref,
            request.state,
            agent_text=request.agent_text,
            user_message=request.user_message,
            error=request.error,
            answer=request.answer,
            artifact_id=request.artifact_id,
        )
        if request.run_status is not None and not result.already_ended:
            await self._runs.set_status(request.run_status)
        return result

    async def _set_state(
        self,
        ref: contract.TaskRef,
        state: str,
        *,
        agent_text: str | None = None,
        user_message: dict[str, Any] | None = None,
        error: str | None = None,
        answer: str | None = None,
        artifact_id: str | None = None,
    ) -> contract.StateResult:
        pool = self._pool
        publisher = self._publisher
        before = await store.get_task(pool, ref.org_id, ref.task_id)
        if before is None:
            raise ApplicationError(
                "the task row is gone", type="task_not_found", non_retryable=True
            )
        if before["state"] == state and user_message is None:
            # A retry of an activity whose update already happened: nothing to publish twice.
            configs = await store.push_configs(pool, ref.org_id, ref.task_id)
            return contract.StateResult(has_push=bool(configs), changed=False)
        if before["state"] in contract.TERMINAL_STATES:
            return contract.StateResult(has_push=False, changed=False, already_ended=True)
        agent_message = None
        if agent_text is not None:
            agent_message = store.text_message(
                "agent",
                agent_text,
                task_id=ref.task_id,
                context_id=ref.context_id,
                message_id=f"{ref.task_id}-status-{activity.info().workflow_run_id}-"
                f"{activity.info().activity_id}",
            )
        artifact = None
        if answer is not None and artifact_id is not None:
            artifact = {
                "artifactId": artifact_id,
                "name": ANSWER_ARTIFACT_NAME,
                "parts": [{"text": answer}],
            }
        history = [m for m in (user_message, agent_message) if m is not None]
        row = await store.update_task(
            pool,
            ref.org_id,
            ref.task_id,
            state=state,
            status_message=agent_message,
            clear_status_message=agent_message is None,
            append_history=history or None,
            artifact=artifact,
            last_input=store.message_text(user_message) if user_message else None,
            error=error,
        )
        assert row is not None
        stream = tev.task_stream(ref.task_id)
        # In order: the caller's message, the answer, the agent's message, then the status.
        for message in (user_message, artifact, agent_message):
            if message is None:
                continue
            if message is artifact:
                # The last chunk carries the whole artifact (readers may finalize from it alone).
                publisher.publish_nowait(
                    ref.org_id,
                    stream,
                    tev.ARTIFACT_UPDATE,
                    tev.artifact_data(
                        ref.task_id,
                        ref.context_id,
                        artifact,
                        chunk="",
                        append=True,
                        last_chunk=True,
                    ),
                )
            else:
                publisher.publish_nowait(
                    ref.org_id,
                    stream,
                    tev.MESSAGE,
                    tev.message_data(ref.task_id, ref.context_id, message),
                )
        await publisher.publish(
            ref.org_id,
            tev.task_stream(ref.task_id),
            tev.STATUS_UPDATE,
            tev.status_data(
                ref.task_id, ref.context_id, state, agent_message, store.iso(row["updated_at"])
            ),
        )
        configs = await store.push_configs(pool, ref.org_id, ref.task_id)
        return contract.StateResult(has_push=bool(configs), changed=True)

    # --- push notifications ------------------------------------------------------------------

    @activity.defn(name=contract.PUSH_NOTIFY)
    async def push_notify(self, request: contract.PushInput) -> int:
        """POST every task event after `after` to each registered config; returns the new cursor.

        Each event goes out as an A2A `StreamResponse` JSON with the config's token in
        `X-A2A-Notification-Token`. A failed delivery raises, so Temporal retries the batch
        (receivers must tolerate a repeated event).
        """
        ref = request.task
        configs = await store.push_configs(self._pool, ref.org_id, ref.task_id)
        events = await read_events(
            self._pool,
            EventFilter(
                org_id=ref.org_id,
                streams=frozenset({tev.task_stream(ref.task_id)}),
                types=frozenset({tev.STATUS_UPDATE, tev.ARTIFACT_UPDATE}),
            ),
            after=request.after,
            limit=PUSH_BATCH,
        )
        if not events:
            return request.after
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=PUSH_TIMEOUT_S, follow_redirects=False)
        allow_private = self._allow_private_urls
        from a2a.types.a2a_pb2 import StreamResponse, TaskArtifactUpdateEvent
        from google.protobuf.json_format import MessageToDict

        for config in configs:
            try:
                await check_outbound_url(config["url"], allow_private=allow_private)
            except UnsafeURLError as exc:
                log.warning("push config %s refused: %s", config["id"], exc)
                continue
            headers = {"Content-Type": "application/json"}
            if config["token"]:
                headers["X-A2A-Notification-Token"] = config["token"]
            auth = config["authentication"] or {}
            if auth.get("scheme") and auth.get("credentials"):
                headers["Authorization"] = f"{auth['scheme']} {auth['credentials']}"
            for event in events:
                a2a_event = tev.to_a2a(event.type, event.data())
                if a2a_event is None:
                    continue
                if isinstance(a2a_event, TaskArtifactUpdateEvent):
                    body = StreamResponse(artifact_update=a2a_event)
                else:
                    body = StreamResponse(status_update=a2a_event)
                response = await self._http.post(
                    config["url"], content=json.dumps(MessageToDict(body)), headers=headers
                )
                if response.status_code >= 300:
                    raise ApplicationError(
                        f"push to {config['url']} answered {response.status_code}",
                        type="push_failed",
                    )
        return events[-1].id


def _json_value(value: Any) -> Any:
    """A tool result as a protobuf Value can hold it (JSON types only)."""
    return json.loads(json.dumps(value, default=str))
