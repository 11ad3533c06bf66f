"""Event-driven pipeline sources: agent_execution, database_change, api_event, schedule.

(`webhook` lives with the pipeline API: items arrive through the pipeline's own HTTP endpoint.)
Importing this package registers each source's config validator with deeployd.pipelines.config;
`validate_source(source)` validates a whole source body with locs starting at "source".
Lifecycle hooks for the pipeline API live in `lifecycle.py`; routing in `router.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deeployd.pipelines.destinations.base import ConfigError
from deeployd.pipelines.sources import agent_execution, api_event, database_change, schedule

VALIDATORS: dict[str, Callable[[dict[str, Any]], None]] = {
    "agent_execution": agent_execution.validate,
    "database_change": database_change.validate,
    "api_event": api_event.validate,
    "schedule": schedule.validate,
}


def validate_source(source: dict[str, Any]) -> None:
    """Raise ConfigError (loc starting with "source") unless `source` is a valid source body."""
    if not isinstance(source, dict):
        raise ConfigError(("source",), "must be an object")
    kind = source.get("type")
    validator = VALIDATORS.get(kind)  # type: ignore[arg-type]
    if validator is None:
        if kind == "webhook":
            return  # validated by deeployd.pipelines.config
        raise ConfigError(
            ("source", "type"),
            f"unknown source type {kind!r}; one of webhook, {', '.join(VALIDATORS)}",
        )
    try:
        validator(source)
    except ConfigError as exc:
        raise ConfigError(("source", *exc.loc), exc.msg) from None


def _register() -> None:
    try:
        from deeployd.pipelines.config import register_source_validator
    except ImportError:  # pragma: no cover - the platform module is not there
        return
    for kind, fn in VALIDATORS.items():
        register_source_validator(kind, fn)


_register()

__all__ = ["VALIDATORS", "ConfigError", "validate_source"]
