"""Turning a store's "no such row" (None) into the API's 404, worded one way everywhere."""

from typing import TypeVar

from deeployd.errors import NotFound

T = TypeVar("T")


def found(row: T | None, what: str) -> T:
    """`row`, or NotFound("<what> not found") (a 404 with that detail)."""
    if row is None:
        raise NotFound(f"{what} not found")
    return row
