"""The source plugin: a `SourceType` (validation and lifecycle hooks) and the `SOURCES` registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from deeployd.registry import Registry

if TYPE_CHECKING:
    from deeployd.services import Services


@dataclass(frozen=True)
class PipelineSource:
    """What a lifecycle hook is told: which pipeline, with which source body."""

    services: Services
    org_id: str
    pipeline_id: str
    source: dict[str, Any]


class SourceType:
    """One kind of pipeline source: how its body is validated and what it needs when a
    pipeline's life changes. Every hook is idempotent and does nothing unless overridden.
    ConfigError (loc relative to the source body) from `check`/`on_started` becomes a 422."""

    def validate(self, source: dict[str, Any]) -> None:
        """Raise ConfigError unless `source` is a valid body (no I/O)."""

    async def check(self, services: Services, org_id: str, source: dict[str, Any]) -> None:
        """Checks that need I/O, when a pipeline is created or updated."""

    async def on_started(self, pipeline: PipelineSource) -> None:
        """The pipeline starts (or its source changed while it runs)."""

    async def on_paused(self, pipeline: PipelineSource, paused: bool) -> None:
        """The pipeline is paused (`paused`) or resumed."""

    async def on_stopped(self, pipeline: PipelineSource) -> None:
        """The pipeline stops or is deleted (must succeed even if what it set up is gone)."""


SOURCES: Registry[SourceType] = Registry("source")
T = TypeVar("T", bound=type[SourceType])


def source_type(name: str) -> Callable[[T], T]:
    """Class decorator: register (one instance of) a `SourceType` as source `name`."""

    def add(cls: T) -> T:
        SOURCES.add(name, cls())
        return cls

    return add
