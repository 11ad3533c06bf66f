"""What a domain operation can refuse, said without HTTP: `api/errors.py` maps each to a status.

Services and stores raise these; only `api/` knows that NotFound is a 404. `Invalid` carries one
or more located field errors, rendered exactly like FastAPI's request validation (422 with the
path of every bad field), so a check that needs the database reads like a schema check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


class DomainError(Exception):
    """Base of the refusals below; `message` is safe to show the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The thing does not exist in the caller's organisation (never says whether it exists in
    another one)."""


class Conflict(DomainError):
    """The thing exists but its state refuses the operation (the run already ended, the task is
    not waiting for input...)."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class Unavailable(DomainError):
    """A dependency (PostgreSQL, Temporal, a worker) cannot serve this right now; retrying
    shortly may succeed."""

    def __init__(self, dependency: str, message: str | None = None) -> None:
        super().__init__(message or f"{dependency} is not reachable")
        self.dependency = dependency


@dataclass(frozen=True)
class FieldError:
    """One bad field: `loc` is its path from the request root, e.g. ("body", "transforms", 1)."""

    loc: Loc
    msg: str


class Invalid(DomainError):
    """One or more located field errors (422). `Invalid(("body", "name"), "too long")` for one;
    `Invalid.of(errors)` for several."""

    def __init__(self, loc: Sequence[str | int], msg: str) -> None:
        self._set([FieldError(tuple(loc), msg)])

    @classmethod
    def of(cls, errors: Iterable[FieldError]) -> Invalid:
        found = list(errors)
        if not found:
            raise ValueError("Invalid needs at least one field error")
        exc = Invalid.__new__(Invalid)
        exc._set(found)
        return exc

    def _set(self, errors: list[FieldError]) -> None:
        self.errors = errors
        DomainError.__init__(self, _render(errors))


def format_loc(loc: Sequence[str | int]) -> str:
    """("body", "transforms", 1, "config") -> "transforms[1].config" (the API's format; the
    request part is named unless it is the body: "query.limit")."""
    parts = list(loc)
    prefix = ""
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        root = parts.pop(0)
        if root != "body":
            prefix = f"{root}."
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return prefix + text


def _render(errors: Sequence[FieldError]) -> str:
    return "; ".join(f"{format_loc(e.loc)}: {e.msg}" if e.loc else e.msg for e in errors)
