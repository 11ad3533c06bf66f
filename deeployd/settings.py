"""The one typed configuration object. Every field is an environment variable (see README)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEEPLOYD_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "DEEPLOYD_DATABASE_URL"),
        description="PostgreSQL URL. Unset: `deeployd dev` embeds one with pgserver.",
    )
    temporal_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "DEEPLOYD_TEMPORAL_ADDRESS"),
        description="host:port of the Temporal frontend. Unset: `deeployd dev` runs the CLI dev server.",
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "DEEPLOYD_TEMPORAL_NAMESPACE"),
    )
    temporal_ui_url: str = "http://localhost:8233"
    task_queue: str = "deeployd"

    data_dir: Path = Path(".deeployd")
    bootstrap_api_key: str | None = None
    secret_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts secrets at rest. `deeployd dev` generates one.",
    )
    allow_private_urls: bool = False

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True

    event_retention_hours: float = 168.0
    event_coalesce_ms: float = 2.0
    event_max_batch: int = 500
    sse_ping_seconds: float = 15.0
    sse_retry_ms: int = 3000
    sse_queue_size: int = 2000
    auth_cache_seconds: float = 5.0

    # Faults (docs/operations.md): bounded waits, so a request fails fast with 503 while a
    # dependency is down instead of hanging.
    db_connect_timeout_seconds: int = Field(
        default=3, ge=2, description="libpq `connect_timeout` for every PostgreSQL connection"
    )
    db_pool_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Longest wait for a free pooled connection before a 503"
    )
    db_statement_timeout_ms: int = Field(
        default=30_000,
        ge=0,
        description="PostgreSQL `statement_timeout` of the service's sessions (0: none)",
    )
    temporal_rpc_timeout_seconds: float = Field(
        default=3.0, gt=0, description="How long the API retries a Temporal call before a 503"
    )
    retry_after_seconds: int = Field(
        default=2, ge=1, description="`Retry-After` of a 503 while PostgreSQL or Temporal is down"
    )
    idempotency_retention_hours: float = Field(
        default=24.0, gt=0, description="How long an `Idempotency-Key` is remembered"
    )

    # Agent runs (docs/agents.md)
    alert_sweep_seconds: float = Field(
        default=30.0,
        description="How often windowed Command Center alert rules are re-evaluated (a Temporal Schedule)",
    )

    # Voice (docs/voice.md)
    voice_default_provider: str = Field(
        default="embedded", description="TTS provider when a request names none: embedded | openai"
    )
    voice_default_engine: Literal["piper", "espeak"] = Field(
        default="piper",
        description="Embedded engine when a request names none (Piper falls back to eSpeak "
        "for languages it has no voice for)",
    )
    voice_piper_workers: int = Field(
        default=2, ge=1, le=64, description="Threads running Piper inference (per API process)"
    )
    voice_max_chars: int = Field(default=5000, description="Longest text one TTS request may carry")
    voice_max_concurrent_per_org: int = Field(
        default=4,
        description="Concurrent audio streams per organisation (per API process); 429 past it",
    )
    voice_queue_chunks: int = Field(
        default=4, description="Encoded sentences buffered per stream before synthesis pauses"
    )
    voice_run_idle_seconds: float = Field(
        default=300.0, description="Run speech ends when a run sends no event for this long"
    )
    voice_run_max_chars: int = Field(
        default=100_000, description="Characters of one run's answer that run speech will speak"
    )
    openai_tts_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="OpenAI-compatible speech API (OpenAI, or a self-hosted Kokoro/Piper server)",
    )
    openai_tts_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DEEPLOYD_OPENAI_TTS_API_KEY"),
        description="Key for openai_tts_base_url; unset: the platform's OPENAI_API_KEY, only "
        "when the base URL is OpenAI's own",
    )

    # The platform's provider keys: sent only to the providers' own endpoints, never to a
    # `baseUrl` a tenant chose (an agent with one brings its own `${secrets.…}` key).
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "DEEPLOYD_OPENAI_API_KEY")
    )
    anthropic_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "DEEPLOYD_ANTHROPIC_API_KEY"),
    )
    openai_tts_model: str = "tts-1"
    openai_tts_pcm_rate: int = Field(
        default=24000,
        description="Sample rate of the provider's `pcm` output (OpenAI/Kokoro: 24000)",
    )
    openai_tts_extra_voices: str = Field(
        default="ash,ballad,coral,sage,verse",
        description="Comma-separated voices the openai provider accepts beyond the six familiar ones",
    )

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set (run `deeployd dev` for an embedded one)")
        return self.database_url

    def require_temporal_address(self) -> str:
        if not self.temporal_address:
            raise RuntimeError(
                "TEMPORAL_ADDRESS is not set (run `deeployd dev` for an embedded one)"
            )
        return self.temporal_address


@lru_cache
def get_settings() -> Settings:
    return Settings()
