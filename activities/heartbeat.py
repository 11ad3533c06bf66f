"""Heartbeating from a side task while an activity works.

A long step (a model's slow first token, a batch waiting on its destination) must never look
like a dead worker, and a cancellation reaches an activity only in a heartbeat's response: so
the activity heartbeats on a timer, independent of its own progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio import activity

_NO_DETAILS = object()


@contextlib.asynccontextmanager
async def heartbeating(
    every_s: float,
    details: Callable[[], Any] | None = None,
    *,
    unchanged_every_s: float | None = None,
) -> AsyncIterator[None]:
    """Heartbeat every `every_s` seconds while the block runs (the first one at once).

    `details()`: what each heartbeat carries (read at every tick; none without it). With
    `unchanged_every_s`, a tick whose details are the very object sent last time heartbeats only
    that often — an idle wait costs few heartbeats, progress goes out at the next tick.
    """

    async def beat() -> None:
        sent: Any = _NO_DETAILS
        last = float("-inf")
        while True:
            now = time.monotonic()
            current = details() if details is not None else None
            if unchanged_every_s is None or current is not sent or now - last >= unchanged_every_s:
                if details is None:
                    activity.heartbeat()
                else:
                    activity.heartbeat(current)
                sent, last = current, now
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def previous_details() -> tuple[Any, ...]:
    """What the last heartbeat of an earlier attempt of this activity carried (empty if none)."""
    return tuple(activity.info().heartbeat_details)
