from datetime import UTC, datetime

from pydantic import ConfigDict
from pydantic.alias_generators import to_camel
from sqlmodel import SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class ApiModel(SQLModel):
    """Base of every shape that crosses the wire: camelCase JSON, snake_case Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)  # type: ignore[assignment]
