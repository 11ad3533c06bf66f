"""Dotted field paths (`user.name`, `items.0.id`), compiled once into fast getter closures.

A segment made of digits indexes a list (`items.0`) and is a plain key on an object (`{"0": ..}`).
A missing key, an index out of range or a step into a scalar reads as `None` (JSON null): paths
never raise, so a filter or map over heterogeneous items behaves predictably.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Getter = Callable[[Any], Any]


def split_path(path: str) -> tuple[str, ...]:
    """Validate and split a dotted path; raises ValueError with a user-facing message."""
    if not isinstance(path, str) or not path:
        raise ValueError("field path must be a non-empty string")
    segments = tuple(path.split("."))
    if any(not s for s in segments):
        raise ValueError(f"invalid field path '{path}': empty segment")
    return segments


def _step(value: Any, segment: str) -> Any:
    if type(value) is dict:
        return value.get(segment)
    if type(value) is list and segment.isdigit():
        index = int(segment)
        return value[index] if index < len(value) else None
    return None


def make_getter(path: str | Sequence[str]) -> Getter:
    """A closure reading `path` from a JSON value (specialised for the common short paths)."""
    segments = split_path(path) if isinstance(path, str) else tuple(path)
    if any(s.isdigit() for s in segments):
        return _generic_getter(segments)
    if len(segments) == 1:
        (k,) = segments

        def get1(v: Any) -> Any:
            try:
                return v.get(k)
            except AttributeError:
                return None

        return get1
    if len(segments) == 2:
        a, b = segments

        def get2(v: Any) -> Any:
            try:
                return v.get(a).get(b)
            except AttributeError:  # None or a non-dict on the way
                return None

        return get2
    return _generic_getter(segments)


def _generic_getter(segments: tuple[str, ...]) -> Getter:
    def get(v: Any) -> Any:
        for s in segments:
            v = _step(v, s)
            if v is None:
                return None
        return v

    return get


def check_output_names(names: Sequence[str]) -> dict[str, str]:
    """Validate output field names (dotted = nested); returns {name: error message} for bad ones.

    `a` and `a.b` together are a conflict: `a` would be both a value and an object.
    """
    errors: dict[str, str] = {}
    seen: dict[tuple[str, ...], str] = {}
    for name in names:
        if not name:
            errors[name] = "output field name must not be empty"
            continue
        try:
            segs = split_path(name)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        seen[segs] = name
    for segs, name in seen.items():
        for i in range(1, len(segs)):
            other = seen.get(segs[:i])
            if other is not None:
                errors[name] = f"output field '{name}' conflicts with '{other}'"
                break
    return errors


def set_path(target: dict, segments: tuple[str, ...], value: Any) -> None:
    """target[a][b]... = value, creating intermediate objects."""
    for s in segments[:-1]:
        nxt = target.get(s)
        if type(nxt) is not dict:
            nxt = target[s] = {}
        target = nxt
    target[segments[-1]] = value
