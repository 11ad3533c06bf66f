"""Voice usage metering: one row per synthesised stream, written when the stream ends or is cut."""

from datetime import datetime

from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field, SQLModel

from deeployd.models.base import ApiModel, utcnow


class VoiceUsage(SQLModel, table=True):
    __tablename__ = "voice_usage"
    __table_args__ = (Index("ix_voice_usage_org_created", "org_id", "created_at"),)

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id")
    source: str  # "tts" (POST /api/voice/tts/stream) or "run" (GET /api/runs/{id}/speech)
    run_id: str | None = None
    provider: str
    voice: str
    format: str
    characters: int  # characters actually synthesised (fewer than requested when cut)
    requested_characters: int
    audio_ms: int  # audio duration produced (0 when a provider streams it through opaquely)
    completed: bool  # False: the client disconnected or synthesis failed before the end
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class VoiceUsageTotals(ApiModel):
    provider: str
    requests: int
    characters: int
    audio_seconds: float


class VoiceUsagePublic(ApiModel):
    """GET /api/voice/usage: the organisation's totals since `since` (default: all time)."""

    since: datetime | None
    requests: int
    characters: int
    audio_seconds: float
    by_provider: list[VoiceUsageTotals]


class TTSRequest(ApiModel):
    """POST /api/voice/tts/stream. Semantic checks (length, voice, format...) live in
    `deeployd.voice.service` so the limits can come from settings; each failure names its field."""

    text: str
    voice: str = "alloy"
    format: str = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    provider: str | None = None
    engine: str | None = None  # embedded provider: piper | espeak
    language: str | None = None
