"""The raw event log of an organisation: listing, and a filtered, resumable live stream."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse

from api.deps import MAX_BIGINT, CurrentPrincipal, LastEventIdDep, StreamerDep, StreamPrincipal
from api.query import EventTypesQuery, StreamKeysQuery, csv_set
from deeployd.eventlog import EventFilter, read_events

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", summary="Stored events, oldest first, after an id")
async def list_events(
    principal: CurrentPrincipal,
    streamer: StreamerDep,
    streams: StreamKeysQuery = None,
    types: EventTypesQuery = None,
    after: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    flt = EventFilter(principal.org_id, csv_set(streams), csv_set(types))
    events = await read_events(streamer.pool, flt, after=after, limit=limit)
    return {
        "items": [
            {
                "id": e.id,
                "stream": e.stream,
                "type": e.type,
                "data": e.data(),
                "createdAt": e.created_at,
            }
            for e in events
        ],
        "nextAfter": events[-1].id if events else after,
    }


@router.get("/stream", summary="SSE of the organisation's events (resumable by Last-Event-ID)")
async def stream_events(
    principal: StreamPrincipal,
    streamer: StreamerDep,
    resume: LastEventIdDep,
    streams: StreamKeysQuery = None,
    types: EventTypesQuery = None,
) -> EventSourceResponse:
    flt = EventFilter(principal.org_id, csv_set(streams), csv_set(types))
    return streamer.response(flt, resume_after=resume)
