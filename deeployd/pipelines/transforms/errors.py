"""Configuration errors of the transform engine, located like FastAPI's validation errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Loc = tuple[str | int, ...]


def format_loc(loc: Sequence[str | int]) -> str:
    """("transforms", 1, "config", "value") -> "transforms[1].config.value" (the API's format)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class ConfigError(ValueError):
    """A bad transform config. `loc` is the path inside the pipeline body, `msg` the reason.

    The API turns it into a 422 with `loc=("body", *err.loc)`; `str(err)` reads like the API's
    rendering, e.g. `transforms[1].config.expression.fullName: unknown function 'concatt'`.
    """

    def __init__(self, loc: Sequence[str | int], msg: str) -> None:
        self.loc: Loc = tuple(loc)
        self.msg = msg
        super().__init__(f"{format_loc(self.loc)}: {msg}" if self.loc else msg)

    def with_prefix(self, *prefix: str | int) -> ConfigError:
        """The same error located inside an enclosing object."""
        return ConfigError((*prefix, *self.loc), self.msg)

    def to_error_dict(self, root: str = "body") -> dict[str, Any]:
        """One entry for `RequestValidationError([...])`."""
        return {"loc": (root, *self.loc), "msg": self.msg, "type": "value_error"}


class StepError(Exception):
    """A per-item failure inside a step; the item becomes a dead letter with this message."""
