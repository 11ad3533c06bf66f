"""Configuration errors of the transform engine, located like FastAPI's validation errors."""

from __future__ import annotations

from collections.abc import Sequence

from deeployd.errors import Invalid

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


class ConfigError(Invalid, ValueError):
    """A bad plugin config. `loc` is the path inside the pipeline body, `msg` the reason.

    The API prefixes the loc with "body" for its 422; `str(err)` reads like the API's
    rendering, e.g. `transforms[1].config.expression.fullName: unknown function 'concatt'`.
    """

    def __init__(self, loc: Sequence[str | int], msg: str) -> None:
        super().__init__(loc, msg)
        self.loc: Loc = tuple(loc)
        self.msg = msg
        self.message = f"{format_loc(self.loc)}: {msg}" if self.loc else msg
        self.args = (self.message,)

    def with_prefix(self, *prefix: str | int) -> ConfigError:
        """The same error located inside an enclosing object."""
        return ConfigError((*prefix, *self.loc), self.msg)


class StepError(Exception):
    """A per-item failure inside a step; the item becomes a dead letter with this message."""
