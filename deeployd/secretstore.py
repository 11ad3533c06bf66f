"""Organisation secrets: encrypted at rest, resolved only where they are used (the worker)."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deeployd.db import Database
from deeployd.ids import new_id
from deeployd.models import Secret, utcnow
from deeployd.security import SecretBox

SECRET_REF = re.compile(r"\$\{secrets\.([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingSecretError(LookupError):
    pass


def referenced_secrets(value: Any) -> set[str]:
    """Names of every `${secrets.NAME}` inside a string, list or dict (recursively)."""
    if isinstance(value, str):
        return set(SECRET_REF.findall(value))
    if isinstance(value, dict):
        return set().union(*(referenced_secrets(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(referenced_secrets(v) for v in value)) if value else set()
    return set()


def substitute(value: Any, secrets: dict[str, str]) -> Any:
    """Replace `${secrets.NAME}` references with their values, recursively."""
    if isinstance(value, str):
        return SECRET_REF.sub(lambda m: secrets[m.group(1)], value)
    if isinstance(value, dict):
        return {k: substitute(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, secrets) for v in value]
    return value


async def _find(session: AsyncSession, org_id: str, name: str) -> Secret | None:
    query = select(Secret).where(Secret.org_id == org_id, Secret.name == name)
    return (await session.exec(query)).first()


class SecretStore:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def put(self, org_id: str, name: str, value: str) -> Secret:
        async with self._db.session() as session:
            row = await _find(session, org_id, name)
            if row is None:
                row = Secret(id=new_id("sec"), org_id=org_id, name=name, ciphertext=b"")
            row.ciphertext = self._box.encrypt(value)
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()
            await session.refresh(row)
            return row

    async def list(self, org_id: str) -> list[Secret]:
        async with self._db.session() as session:
            rows = await session.exec(
                select(Secret).where(Secret.org_id == org_id).order_by(col(Secret.name))
            )
            return list(rows)

    async def delete(self, org_id: str, name: str) -> bool:
        async with self._db.session() as session:
            row = await _find(session, org_id, name)
            if row is None:
                return False
            await session.delete(row)
            await session.commit()
            return True

    async def values(self, org_id: str, names: set[str]) -> dict[str, str]:
        if not names:
            return {}
        async with self._db.session() as session:
            rows = await session.exec(
                select(Secret).where(Secret.org_id == org_id, col(Secret.name).in_(names))
            )
            found = {row.name: self._box.decrypt(row.ciphertext) for row in rows}
        missing = names - found.keys()
        if missing:
            raise MissingSecretError(f"unknown secret(s): {', '.join(sorted(missing))}")
        return found

    async def resolve(self, org_id: str, value: Any) -> Any:
        """`value` with every `${secrets.NAME}` replaced by the decrypted secret."""
        return substitute(value, await self.values(org_id, referenced_secrets(value)))
