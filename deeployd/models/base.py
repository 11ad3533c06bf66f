from datetime import UTC, datetime
from typing import Any

from pydantic import ConfigDict
from pydantic import Field as PydanticField
from pydantic.alias_generators import to_camel
from sqlmodel import SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class ApiModel(SQLModel):
    """Base of every shape that crosses the wire: camelCase JSON, snake_case Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)  # type: ignore[assignment]


def _no_default_in_schema(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def patch_field(**constraints: Any) -> Any:
    """A PATCH body's field for a NOT NULL value: it may be left out (the stored value stays)
    but not sent as `null`. Annotate it without `None` (`name: str = patch_field(...)`): `null`
    is then a 422 naming the field, and the unvalidated default only means "not sent" (read such
    bodies with `model_dump(exclude_unset=True)`)."""
    return PydanticField(default=None, json_schema_extra=_no_default_in_schema, **constraints)
