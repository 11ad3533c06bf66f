"""Configuration errors of the transform engine, located like FastAPI's validation errors."""

from __future__ import annotations

from collections.abc import Sequence

from deeployd.errors import Invalid

Loc = tuple[str | int, ...]


class ConfigError(Invalid, ValueError):
    """A bad plugin config. `loc` is the path inside the pipeline body, `msg` the reason.

    The API prefixes the loc with "body" for its 422; `str(err)` reads like the API's
    rendering, e.g. `transforms[1].config.expression.fullName: unknown function 'concatt'`.
    """

    def __init__(self, loc: Sequence[str | int], msg: str) -> None:
        super().__init__(loc, msg)
        self.loc: Loc = tuple(loc)
        self.msg = msg

    def with_prefix(self, *prefix: str | int) -> ConfigError:
        """The same error located inside an enclosing object."""
        return ConfigError((*prefix, *self.loc), self.msg)


class StepError(Exception):
    """A per-item failure inside a step; the item becomes a dead letter with this message."""
