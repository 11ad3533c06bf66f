"""Streams that end when the API key they were opened with is revoked.

An open stream (SSE, A2A streaming) keeps serving its key's organisation; `revocable` re-checks
the key in the background and stops the stream within KEY_RECHECK_SECONDS of a revocation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

# How often an open stream re-checks that its API key is still valid.
KEY_RECHECK_SECONDS = 2.0

KeyCheck = Callable[[str], Awaitable[bool]]


class KeyRevoked(Exception):
    """The API key a stream was opened with has been revoked."""


async def revocable(
    frames: AsyncIterable[Any], key_id: str, key_check: KeyCheck, every: float
) -> AsyncGenerator[Any]:
    """`frames`, while the key stays valid; raises KeyRevoked once it is revoked.

    A watcher task re-checks the key every `every` seconds, so an idle stream notices too, and
    nothing is added per frame (the hot path of a busy fan-out). When the key is revoked while
    this generator waits for the next frame, the watcher interrupts that wait (a cancellation
    this generator takes back); otherwise the flag is seen before the next frame is awaited.
    """
    task = asyncio.current_task()
    state = {"waiting": False, "revoked": False}

    async def watch() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                valid = await key_check(key_id)
            except Exception:  # the database is down: keep streaming, check again later
                log.warning("sse: cannot re-check key %s", key_id, exc_info=True)
                continue
            if not valid:
                state["revoked"] = True
                if state["waiting"] and task is not None:
                    task.cancel()
                return

    watcher = asyncio.create_task(watch())
    iterator = aiter(frames)
    try:
        while not state["revoked"]:
            state["waiting"] = True
            try:
                frame = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Ours (the key was revoked) unless someone else cancelled the task as well.
                if not state["revoked"] or task is None or task.uncancel() > 0:
                    raise
                break
            finally:
                state["waiting"] = False
            yield frame
        raise KeyRevoked(key_id)
    finally:
        watcher.cancel()
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()
