"""Streams that have ended stay ended: a reconnect after the end is answered `204 No Content`.

The SSE spec makes `204` the way to tell an `EventSource` to stop reconnecting. Two readers get it:
- one whose `Last-Event-ID` is at or past the stream's end event (a browser's own reconnect after
  it received `done`, or a script resuming a finished run);
- a browser that was already sent the end of this stream and comes back *without* an id. The
  docs' `createReconnectingEventSource` builds a new `EventSource` on each error, and a new one
  sends no `Last-Event-ID`; without this it would replay the whole run on every reconnect. The
  browser is recognised by a random cookie (`deeployd_sse`, HttpOnly, no secret in it) set on
  the first stream response; the memory of who saw which end is bounded and expires, and lives in
  the API process (a reader landing on another process gets the full replay, as before).

A first connection from a new reader, with no id, still replays the stream from its beginning.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

from fastapi import Cookie, Depends
from psycopg_pool import AsyncConnectionPool

from deeployd.eventlog import EventFilter, StoredEvent, StreamEnd, end_event_id

READER_COOKIE = "deeployd_sse"
_READER = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def stream_reader(
    cookie: Annotated[str | None, Cookie(alias=READER_COOKIE)] = None,
) -> str | None:
    """The reader's cookie when it is one we could have set (anything else is ignored)."""
    return cookie if cookie is not None and _READER.match(cookie) else None


StreamReader = Annotated[str | None, Depends(stream_reader)]


class EndedStreams:
    """Which readers were sent the end of which streams: LRU-bounded, each entry expiring
    `ttl_seconds` after it was last asked about (the docs' helper retries up to 30 s apart)."""

    def __init__(
        self,
        *,
        capacity: int = 10_000,
        ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def record(self, reader: str, key: str) -> None:
        self._seen[(reader, key)] = self._clock()
        self._seen.move_to_end((reader, key))
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def seen(self, reader: str, key: str) -> bool:
        at = self._seen.get((reader, key))
        if at is None:
            return False
        if self._clock() - at > self.ttl_seconds:
            del self._seen[(reader, key)]
            return False
        self.record(reader, key)
        return True

    def __len__(self) -> int:
        return len(self._seen)


class EndTracker:
    """Per request: decides whether the reader already has the end, and remembers when it gets it."""

    def __init__(
        self,
        ended: EndedStreams,
        pool: AsyncConnectionPool,
        flt: EventFilter,
        end: StreamEnd,
        reader: str | None,
        *,
        remember: bool = True,
    ) -> None:
        self._ended = ended
        self._pool = pool
        self._flt = flt
        self._end = end
        self._remember = remember
        self.new_reader = remember and reader is None
        self.reader = reader or secrets.token_urlsafe(18)

    async def already_ended(self, resume: int | None) -> bool:
        """True when the answer must be 204: this reader has nothing more to receive."""
        if resume is None:
            return self._remember and self._ended.seen(self.reader, self._end.key)
        ended_at = await end_event_id(self._pool, self._flt, self._end)
        return ended_at is not None and resume >= ended_at

    def stop_when(self, event: StoredEvent) -> bool:
        """The stream's stop condition; records the reader as it is sent the end event."""
        if not self._end.ends(event):
            return False
        if self._remember:
            self._ended.record(self.reader, self._end.key)
        return True

    def headers(self) -> dict[str, str]:
        if not self.new_reader:
            return {}
        return {
            "Set-Cookie": f"{READER_COOKIE}={self.reader}; Path=/api/; HttpOnly; SameSite=Lax; "
            "Max-Age=86400"
        }
