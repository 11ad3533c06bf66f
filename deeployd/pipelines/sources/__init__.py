"""Pipeline sources, one module each, in one registry: `SOURCES` (see deeployd/registry.py).

Each source module registers a `SourceType` (its body validator and lifecycle hooks) with
`@source_type("<type>")`; this package imports the built-ins, so adding a source is one new
module plus one import line below.
`validate_source(source)` validates a whole source body with locs starting at "source".
Lifecycle hooks for the pipeline API live in `lifecycle.py`; routing in `router.py`.
"""

from __future__ import annotations

from typing import Any

from deeployd.pipelines.sources import (  # noqa: F401  (each registers itself)
    agent_execution,
    api_event,
    database_change,
    schedule,
    webhook,
)
from deeployd.pipelines.sources.plugin import SOURCES, PipelineSource, SourceType, source_type
from deeployd.pipelines.transforms.errors import ConfigError


def source_types() -> list[str]:
    return SOURCES.names()


def validate_source(source: dict[str, Any]) -> None:
    """Raise ConfigError (loc starting with "source") unless `source` is a valid source body."""
    if not isinstance(source, dict):
        raise ConfigError(("source",), "must be an object")
    kind = source.get("type")
    plugin = SOURCES.find(kind) if isinstance(kind, str) else None
    if plugin is None:
        raise ConfigError(
            ("source", "type"),
            f"unknown source type {kind!r}; one of {', '.join(SOURCES.names())}",
        )
    try:
        plugin.validate(source)
    except ConfigError as exc:
        raise ConfigError(("source", *exc.loc), exc.msg) from None


__all__ = [
    "SOURCES",
    "ConfigError",
    "PipelineSource",
    "SourceType",
    "source_type",
    "source_types",
    "validate_source",
]
