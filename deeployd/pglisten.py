"""A PostgreSQL LISTEN connection that stays open: reconnects with capped backoff and tells its
owner when it is (re)connected, so the owner can catch up on what it missed in between."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import psycopg

log = logging.getLogger(__name__)


async def listen_forever(
    url: str,
    channels: Sequence[str],
    on_notify: Callable[[psycopg.Notify], None],
    *,
    on_connected: Callable[[], None] | None = None,
    on_lost: Callable[[], None] | None = None,
    name: str = "LISTEN",
) -> None:
    """Run until cancelled. `on_connected` runs after every (re)connection, `on_lost` after a drop."""
    backoff = 0.1
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                for channel in channels:
                    await conn.execute(f"LISTEN {channel}")
                backoff = 0.1
                if on_connected is not None:
                    on_connected()
                async for note in conn.notifies():
                    on_notify(note)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s connection lost; reconnecting", name, exc_info=True)
            if on_lost is not None:
                on_lost()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
