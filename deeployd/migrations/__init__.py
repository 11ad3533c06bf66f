"""Alembic migrations, run programmatically (`deeployd migrate`, `deeployd dev`, the test fixtures)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from deeployd.db import sqlalchemy_url

HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the schema to the newest revision of every branch."""
    command.upgrade(alembic_config(database_url), "heads")
