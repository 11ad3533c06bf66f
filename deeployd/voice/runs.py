"""Speaking an agent run's answer while it is written: read the run's token events from the
event log (replay, then the live bus), cut the text into sentences as they end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from deeployd.agents import contract as agents_contract
from deeployd.eventlog import EventBus, EventFilter, StoredEvent, Subscription, read_events
from deeployd.voice.text import SentenceBuffer, speakable_markdown, split_sentences

_PAGE = 500
END_TYPES = frozenset({"done", "error"})
TURN_BREAKS = frozenset({"tool_call", "tool_result", "approval_required"})


@dataclass(frozen=True)
class RunLookup:
    has_events: bool
    has_row: bool
    finished_answer: str | None = None  # a finished run's stored answer (its events may be pruned)

    @property
    def exists(self) -> bool:
        return self.has_events or self.has_row


async def find_run(pool: AsyncConnectionPool, org_id: str, run_id: str) -> RunLookup:
    """Does the caller's organisation own this run (events on `run:<id>`, or a `runs` row)?"""
    stream = agents_contract.run_stream(run_id)
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM events WHERE org_id = %s AND stream = %s LIMIT 1", (org_id, stream)
        )
        has_events = await cursor.fetchone() is not None
        # The runs table belongs to the agent-runs feature; tolerate a deployment without it.
        cursor = await conn.execute("SELECT to_regclass('runs') IS NOT NULL")
        row = await cursor.fetchone()
        if not row or not row[0]:
            return RunLookup(has_events, False)
        try:
            async with conn.transaction():
                cursor = await conn.execute(
                    "SELECT status, result FROM runs WHERE id = %s AND org_id = %s",
                    (run_id, org_id),
                )
                run = await cursor.fetchone()
        except psycopg.Error:  # a schema without those columns: fall back to id + org only
            cursor = await conn.execute(
                "SELECT NULL, NULL FROM runs WHERE id = %s AND org_id = %s", (run_id, org_id)
            )
            run = await cursor.fetchone()
    if run is None:
        return RunLookup(has_events, False)
    status, result = run
    finished = str(result) if status in agents_contract.TERMINAL and result else None
    return RunLookup(has_events, True, finished)


class RunText:
    """The text of one run, as sentences, from its first token until `done`/`error`."""

    def __init__(
        self,
        bus: EventBus,
        pool: AsyncConnectionPool,
        org_id: str,
        run_id: str,
        *,
        idle_seconds: float,
        max_chars: int,
    ) -> None:
        self.filter = EventFilter(org_id, frozenset({agents_contract.run_stream(run_id)}))
        self._bus = bus
        self._pool = pool
        self._idle = idle_seconds
        self._max_chars = max_chars
        self.characters_received = 0
        # Subscribe BEFORE replaying, so nothing committed in between is missed.
        self._sub: Subscription | None = bus.subscribe(self.filter)

    def close(self) -> None:
        if self._sub is not None:
            self._bus.unsubscribe(self._sub)
            self._sub = None

    async def _events(self) -> AsyncIterator[StoredEvent]:
        last = 0
        while True:  # catch up from the log (first time, and after an overflowed mailbox)
            page = await read_events(self._pool, self.filter, after=last, limit=_PAGE)
            for event in page:
                last = event.id
                yield event
            if len(page) == _PAGE:
                continue
            sub = self._sub
            assert sub is not None
            while not sub.overflowed:
                await asyncio.wait_for(sub.wait(), timeout=self._idle)
                for event in sub.drain(_PAGE):
                    if event.id > last:
                        last = event.id
                        yield event
                if sub.closed:
                    return
            # Too far behind for the mailbox: resubscribe, then replay from where we were.
            self._bus.unsubscribe(sub)
            self._sub = self._bus.subscribe(self.filter)

    async def stored_answer(self, answer: str) -> AsyncIterator[str]:
        """A finished run whose events are gone (retention): speak its stored answer."""
        try:
            self.characters_received = min(len(answer), self._max_chars)
            for sentence in split_sentences(answer[: self._max_chars]):
                yield speakable_markdown(sentence)
        finally:
            self.close()

    async def sentences(self) -> AsyncIterator[str]:
        buffer = SentenceBuffer()
        try:
            turn: object = None
            async for event in self._events():
                if event.type == "token":
                    data = event.data()
                    if data.get("turn") != turn:  # a new model turn starts a new sentence
                        turn = data.get("turn")
                        for sentence in buffer.flush():
                            yield speakable_markdown(sentence)
                    token = str(data.get("token", ""))
                    room = self._max_chars - self.characters_received
                    token = token[: max(room, 0)]
                    self.characters_received += len(token)
                    for sentence in buffer.feed(token):
                        yield speakable_markdown(sentence)
                    if room <= len(token):
                        break
                elif event.type in END_TYPES:
                    break
                elif event.type in TURN_BREAKS:  # text before a tool call is said before it
                    for sentence in buffer.flush():
                        yield speakable_markdown(sentence)
            for sentence in buffer.flush():
                yield speakable_markdown(sentence)
        except TimeoutError:  # the run went quiet: say what we have and end
            for sentence in buffer.flush():
                yield speakable_markdown(sentence)
        finally:
            self.close()
