"""Organisations and API keys: creation, lookup, and the dev/bootstrap admin key."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deeployd.errors import NotFound
from deeployd.ids import new_id
from deeployd.models import ApiKey, Organization, utcnow
from deeployd.models.organization import Scope
from deeployd.security import display_prefix, generate_api_key, hash_api_key

log = logging.getLogger(__name__)

DEFAULT_ORG_NAME = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the organisation every query is scoped to, and what the key may do."""

    org_id: str
    key_id: str
    key_prefix: str
    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        if Scope.admin in self.scopes:
            return True
        if scope == Scope.read:
            return bool(self.scopes & {Scope.read, Scope.write})
        return scope in self.scopes


async def get_or_create_org(session: AsyncSession, name: str) -> Organization:
    org = (await session.exec(select(Organization).where(Organization.name == name))).first()
    if org is None:
        org = Organization(id=new_id("org"), name=name)
        session.add(org)
        await session.commit()
        await session.refresh(org)
    return org


async def create_api_key(
    session: AsyncSession,
    org_id: str,
    name: str,
    scopes: list[str],
    *,
    key: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a key's hash; the plain key is returned once and never stored."""
    plain = key or generate_api_key()
    row = ApiKey(
        id=new_id("key"),
        org_id=org_id,
        name=name,
        prefix=display_prefix(plain),
        key_hash=hash_api_key(plain),
        scopes=sorted(set(scopes)),
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row, plain


async def get_org(session: AsyncSession, org_id: str) -> Organization:
    org = (await session.exec(select(Organization).where(Organization.id == org_id))).first()
    if org is None:
        raise NotFound("organisation not found")
    return org


async def list_api_keys(session: AsyncSession, org_id: str) -> list[ApiKey]:
    rows = await session.exec(
        select(ApiKey).where(ApiKey.org_id == org_id).order_by(col(ApiKey.created_at))
    )
    return list(rows)


async def revoke_api_key(session: AsyncSession, org_id: str, key_id: str) -> ApiKey:
    """Mark the organisation's key revoked (idempotent); NotFound for a key it does not own."""
    row = (
        await session.exec(select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id))
    ).first()
    if row is None:
        raise NotFound("API key not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        await session.commit()
    return row


class KeyAuthenticator:
    """Resolves bearer keys to principals, with a short cache so streams don't hammer the DB."""

    def __init__(self, ttl_seconds: float = 5.0) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def forget(self, key_hash: str | None = None) -> None:
        if key_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(key_hash, None)

    async def authenticate(self, session: AsyncSession, key: str) -> Principal | None:
        digest = hash_api_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = (await session.exec(select(ApiKey).where(ApiKey.key_hash == digest))).first()
        principal = None
        if row is not None and row.revoked_at is None:
            principal = Principal(row.org_id, row.id, row.prefix, frozenset(row.scopes))
            row.last_used_at = utcnow()
            session.add(row)
            await session.commit()
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, principal)
        return principal


class KeyLiveness:
    """Is an API key (by id) still valid? For open streams, which re-check it every few
    seconds: one query per key per `ttl_seconds`, however many streams it holds open."""

    def __init__(self, pool: Any, ttl_seconds: float = 1.0) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, bool]] = {}

    async def __call__(self, key_id: str) -> bool:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT revoked_at IS NULL FROM api_keys WHERE id = %s", (key_id,)
            )
            row = await cursor.fetchone()
        valid = bool(row and row[0])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (now + self._ttl, valid)
        return valid


async def bootstrap(
    session: AsyncSession, *, bootstrap_key: str | None
) -> tuple[Organization, str | None]:
    """Ensure the default organisation exists and, when asked, that `bootstrap_key` is its admin key.

    Returns the organisation and the plain admin key when one was created here.
    """
    org = await get_or_create_org(session, DEFAULT_ORG_NAME)
    if bootstrap_key:
        existing = (
            await session.exec(select(ApiKey).where(ApiKey.key_hash == hash_api_key(bootstrap_key)))
        ).first()
        if existing is None:
            await create_api_key(session, org.id, "bootstrap", [Scope.admin], key=bootstrap_key)
            return org, bootstrap_key
        if existing.org_id != org.id or existing.revoked_at is not None:
            raise RuntimeError(
                "DEEPLOYD_BOOTSTRAP_API_KEY belongs to another organisation or is revoked"
            )
        return org, None
    return org, None
