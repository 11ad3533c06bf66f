"""Database access: one async SQLAlchemy engine for the ORM, one psycopg pool for hot paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from deeployd.settings import Settings


def sqlalchemy_url(url: str) -> str:
    """Point any postgres URL at the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """The plain libpq form of a URL, as psycopg.connect wants it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Database:
    """Owns the process's connection pools; built once per process."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout_s: int = 3,
        pool_timeout_s: float = 3.0,
        statement_timeout_ms: int = 30_000,
    ) -> None:
        self.url = libpq_url(url)
        # Bounded waits everywhere: a request fails (503) within seconds while PostgreSQL is
        # down or saturated, rather than hanging on a connect or a pool checkout.
        connect_args: dict[str, Any] = {
            "connect_timeout": connect_timeout_s,
            "options": f"-c statement_timeout={statement_timeout_ms}",
        }
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=pool_timeout_s,
            connect_args=connect_args,
        )
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self.pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs=connect_args,
            timeout=pool_timeout_s,
            # A connection that died with the server is replaced before use, not handed out.
            check=AsyncConnectionPool.check_connection,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int = 10) -> Database:
        return cls(
            settings.require_database_url(),
            pool_size=pool_size,
            connect_timeout_s=settings.db_connect_timeout_seconds,
            pool_timeout_s=settings.db_pool_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()
        await self.engine.dispose()

    async def ping(self, *, wait_s: float) -> None:
        """One round trip to PostgreSQL; raises if no connection is had within `wait_s` seconds."""
        async with self.pool.connection(timeout=wait_s) as conn:
            await conn.execute("SELECT 1")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session


async def save_row(session: AsyncSession, row: SQLModel) -> None:
    """Insert or update one row, commit, and read it back (database defaults included)."""
    session.add(row)
    await session.commit()
    await session.refresh(row)


async def delete_row(session: AsyncSession, row: SQLModel) -> None:
    await session.delete(row)
    await session.commit()
