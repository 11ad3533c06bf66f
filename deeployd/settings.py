"""The one typed configuration object. Every field is an environment variable (see README)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
