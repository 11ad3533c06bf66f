"""Conversations with an agent: messages in, streamed runs out.

`POST /api/conversations/{id}/messages?stream=true` answers with the SSE stream of the run the
message starts; `GET …/messages?stream=true` re-attaches (as a browser's EventSource does) to the
conversation's current or latest run, resuming by Last-Event-ID.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse

from api.deps import (
    CurrentPrincipal,
    IdempotencyKeyHeader,
    LastEventIdDep,
    ServicesDep,
    SessionDep,
    StreamerDep,
    StreamPrincipal,
    TemporalDep,
    WritePrincipal,
    idempotency_key,
)
from api.lookup import found
from api.sse_ended import EndTracker, StreamReader
from deeployd.agents import contract, service, store
from deeployd.agents import events as ev
from deeployd.errors import Conflict, Invalid, NotFound
from deeployd.eventlog import EventFilter
from deeployd.idempotency import IdempotencyKey, KeyTaken, canonical_json, lookup_in
from deeployd.ids import new_id
from deeployd.models.agent import (
    Agent,
    Conversation,
    ConversationCreate,
    ConversationDetail,
    ConversationPublic,
    MessageCreate,
    MessagePublic,
)

router = APIRouter(prefix="/api/conversations", tags=["conversations"])

MAX_WAIT_SECONDS = 300.0


async def _get(session: SessionDep, org_id: str, conversation_id: str) -> Conversation:
    return found(
        await store.find_owned(session, Conversation, org_id, conversation_id), "conversation"
    )


async def _messages(session: SessionDep, org_id: str, conversation_id: str) -> list[MessagePublic]:
    rows = await store.conversation_messages(session, org_id, conversation_id)
    return [MessagePublic.model_validate(r.model_dump()) for r in rows]


@router.post("", status_code=201, response_model=ConversationPublic, response_model_by_alias=True)
async def create_conversation(
    body: ConversationCreate, principal: WritePrincipal, session: SessionDep
) -> ConversationPublic:
    agent = await store.find_owned(session, Agent, principal.org_id, body.agent_id)
    if agent is None:
        raise Invalid(("body", "agentId"), "unknown agent")
    row = Conversation(
        id=new_id("conv"),
        org_id=principal.org_id,
        agent_id=agent.id,
        title=body.title,
        multitask=body.multitask.value,
    )
    await store.save_row(session, row)
    return ConversationPublic.model_validate(row.model_dump())


@router.get("", response_model=list[ConversationPublic], response_model_by_alias=True)
async def list_conversations(
    principal: CurrentPrincipal,
    session: SessionDep,
    agent_id: Annotated[str | None, Query(alias="agentId")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ConversationPublic]:
    rows = await store.list_conversations(session, principal.org_id, agent_id=agent_id, limit=limit)
    return [ConversationPublic.model_validate(r.model_dump()) for r in rows]


@router.get("/{conversation_id}", response_model=ConversationDetail, response_model_by_alias=True)
async def get_conversation(
    conversation_id: str, principal: CurrentPrincipal, session: SessionDep
) -> ConversationDetail:
    row = await _get(session, principal.org_id, conversation_id)
    return ConversationDetail.model_validate(
        {
            **row.model_dump(),
            "messages": await _messages(session, principal.org_id, conversation_id),
        }
    )


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: str, principal: WritePrincipal, session: SessionDep
) -> None:
    row = await _get(session, principal.org_id, conversation_id)
    busy = await store.conversation_run_id(
        session, principal.org_id, conversation_id, contract.ACTIVE
    )
    if busy is not None:
        raise Conflict(f"run {busy} is still active; cancel it first")
    await store.delete_conversation(session, row)


def _run_stream(streamer: StreamerDep, org_id: str, run_id: str, resume: int | None) -> Response:
    flt = EventFilter(org_id, frozenset({contract.run_stream(run_id)}))
    return streamer.response(
        flt,
        resume_after=resume if resume is not None else 0,  # from the run's beginning
        stop_when=ev.run_end(run_id).ends,
        headers={"X-Run-Id": run_id},
    )


async def _started_once(
    services: ServicesDep,
    client: TemporalDep,
    org_id: str,
    conversation_id: str,
    content: str,
    idempotency: IdempotencyKey | None,
) -> tuple[str, str, str, bool]:
    """(run id, message id, run status, replayed): the run this message started, the first
    time or — for a retry with the same Idempotency-Key — the one the first request started."""
    while True:
        stored = await lookup_in(services.db.pool, idempotency) if idempotency else None
        if stored is not None:
            run = await store.get_run(services.db.pool, org_id, stored.body["runId"])
            status = run["status"] if run is not None else "unknown"
            return stored.body["runId"], stored.body["messageId"], status, True
        try:
            started = await service.send_message(
                services, client, org_id, conversation_id, content, idempotency=idempotency
            )
        except KeyTaken:
            continue  # a concurrent request with the key won: answer with its run
        return started.run["id"], started.message_id, started.run["status"], False


@router.post("/{conversation_id}/messages", response_model=None)
async def send_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    principal: WritePrincipal,
    services: ServicesDep,
    client: TemporalDep,
    streamer: StreamerDep,
    stream: bool = False,
    wait: bool = False,
    key: IdempotencyKeyHeader = None,
) -> Any:
    """Send a message. `?stream=true`: the SSE stream of its run; `?wait=true`: the final
    answer; otherwise 202 `{runId}` at once. A retry with the same `Idempotency-Key` sends
    nothing new and gets the first request's run (its stream from the beginning, its answer)."""
    idempotency = idempotency_key(request, principal, key, canonical_json(body.content))
    run_id, message_id, run_status, replayed = await _started_once(
        services, client, principal.org_id, conversation_id, body.content, idempotency
    )
    if stream:
        return _run_stream(streamer, principal.org_id, run_id, 0)
    if wait:
        row = await service.wait_for_run(
            services, client, principal.org_id, run_id, MAX_WAIT_SECONDS
        )
        public = service.run_public(row, services.settings)
        return JSONResponse(
            {
                "runId": run_id,
                "status": row["status"],
                "message": (
                    {"role": "assistant", "content": row["result"]}
                    if row["status"] == "completed"
                    else None
                ),
                "usage": public.token_usage.model_dump(),
                "cost": row["cost"],
                "error": row["error"],
                "errorCode": row["error_code"],
            }
        )
    return JSONResponse(
        {"runId": run_id, "messageId": message_id, "status": run_status},
        status_code=202,
        headers={
            "Location": f"/api/runs/{run_id}",
            **({"Idempotent-Replayed": "true"} if replayed else {}),
        },
    )


@router.get("/{conversation_id}/messages", response_model=None)
async def list_or_stream_messages(
    conversation_id: str,
    principal: StreamPrincipal,
    session: SessionDep,
    streamer: StreamerDep,
    resume: LastEventIdDep,
    reader: StreamReader,
    stream: bool = False,
) -> Any:
    """Without `stream`: the messages. With `?stream=true`: attach to the current (or latest)
    run's stream; resumes after Last-Event-ID, else replays that run from its beginning. A
    reader that already has the run's end (by Last-Event-ID, or a browser that was sent it and
    reconnects without one) gets 204, which stops an EventSource from reconnecting."""
    conversation = await _get(session, principal.org_id, conversation_id)
    if not stream:
        return JSONResponse(
            [
                m.model_dump(mode="json", by_alias=True)
                for m in await _messages(session, principal.org_id, conversation_id)
            ]
        )
    run_id = conversation.active_run_id or await store.conversation_run_id(
        session, principal.org_id, conversation_id
    )
    if run_id is None:
        raise NotFound("the conversation has no runs yet")
    flt = EventFilter(principal.org_id, frozenset({contract.run_stream(run_id)}))
    tracker = EndTracker(streamer.ended, streamer.pool, flt, ev.run_end(run_id), reader)
    if await tracker.already_ended(resume):
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"X-Run-Id": run_id})
    return streamer.response(
        flt,
        resume_after=resume if resume is not None else 0,
        stop_when=tracker.stop_when,
        headers={"X-Run-Id": run_id, **tracker.headers()},
    )
