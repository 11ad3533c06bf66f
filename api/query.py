"""Query-string shapes several routes share."""

from typing import Annotated

from fastapi import Query

StreamKeysQuery = Annotated[str | None, Query(description="comma-separated stream keys")]
EventTypesQuery = Annotated[str | None, Query(description="comma-separated event types")]


def csv_set(value: str | None) -> frozenset[str] | None:
    """ "a, b,,c" -> {"a", "b", "c"}; nothing listed -> None (no filter)."""
    items = frozenset(part.strip() for part in (value or "").split(",") if part.strip())
    return items or None
