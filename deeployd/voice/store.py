"""Voice rows: one usage row per stream, and the organisation's totals by provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from deeployd.db import Database
from deeployd.ids import new_id
from deeployd.models.voice import VoiceUsage, VoiceUsagePublic, VoiceUsageTotals


@dataclass
class UsageRecord:
    org_id: str
    source: str
    provider: str
    voice: str
    format: str
    requested_characters: int
    run_id: str | None = None
    characters: int = 0
    audio_ms: int = 0
    completed: bool = False


async def record_usage(db: Database, usage: UsageRecord) -> None:
    async with db.session() as session:
        session.add(
            VoiceUsage(
                id=new_id("vu"),
                org_id=usage.org_id,
                source=usage.source,
                run_id=usage.run_id,
                provider=usage.provider,
                voice=usage.voice,
                format=usage.format,
                characters=usage.characters,
                requested_characters=usage.requested_characters,
                audio_ms=usage.audio_ms,
                completed=usage.completed,
            )
        )
        await session.commit()


async def usage_totals(db: Database, org_id: str, since: datetime | None) -> VoiceUsagePublic:
    """What the organisation synthesised (since `since`), in total and by provider."""
    query = select(
        VoiceUsage.provider,
        func.count(),
        func.coalesce(func.sum(VoiceUsage.characters), 0),
        func.coalesce(func.sum(VoiceUsage.audio_ms), 0),
    ).where(VoiceUsage.org_id == org_id)
    if since is not None:
        query = query.where(VoiceUsage.created_at >= since)
    async with db.session() as session:
        rows = (await session.exec(query.group_by(VoiceUsage.provider))).all()  # type: ignore[call-overload]
    totals = [
        VoiceUsageTotals(
            provider=p, requests=int(n), characters=int(c), audio_seconds=round(int(ms) / 1000, 3)
        )
        for p, n, c, ms in sorted(rows)
    ]
    return VoiceUsagePublic(
        since=since,
        requests=sum(t.requests for t in totals),
        characters=sum(t.characters for t in totals),
        audio_seconds=round(sum(t.audio_seconds for t in totals), 3),
        by_provider=totals,
    )
