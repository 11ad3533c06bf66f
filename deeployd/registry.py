"""One way to plug in a kind of thing by name: transforms, sources, destinations, providers.

Each plugin family keeps one `Registry` in its package; a plugin module registers itself with a
decorator, and the package's `__init__` imports the built-in modules — so adding one is one new
file plus one import line. The API derives its validation (the list of known names, the error
for an unknown one) from the registry instead of keeping a list of its own.

    TRANSFORMS: Registry[type[Step]] = Registry("transform")

    @TRANSFORMS.register("filter")
    class FilterStep: ...

    TRANSFORMS.get("filtr")   # Invalid(("type",), "unknown transform 'filtr'; one of filter, map")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from deeployd.errors import Invalid

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: file `plugin` under `name` (a second plugin with the same name is a bug)."""

        def add(plugin: T) -> T:
            self.add(name, plugin)
            return plugin

        return add

    def add(self, name: str, plugin: T) -> None:
        existing = self._entries.get(name)
        if existing is not None and existing is not plugin:
            raise RuntimeError(f"two {self.kind}s are registered as {name!r}")
        self._entries[name] = plugin

    def get(self, name: object, loc: Sequence[str | int] = ("type",)) -> T:
        """The plugin called `name`, or Invalid located at `loc` listing the known names."""
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise Invalid(loc, f"unknown {self.kind} {name!r}; one of {', '.join(self.names())}")

    def find(self, name: str) -> T | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())
