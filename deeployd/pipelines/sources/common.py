"""What every source shares: the registry, camelCase pydantic models whose errors become
ConfigError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from deeployd.pipelines.transforms.errors import ConfigError
from deeployd.registry import Registry

# A source type's body validator: raises ConfigError with a loc relative to the source body.
SourceValidator = Callable[[dict[str, Any]], None]
SOURCES: Registry[SourceValidator] = Registry("source")


class SourceModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    type: str


M = TypeVar("M", bound=SourceModel)


def parse_source(model: type[M], source: dict[str, Any]) -> M:
    """Validate a source body; ConfigError locs are relative to the source body."""
    try:
        return model.model_validate(source)
    except ValidationError as exc:
        error = exc.errors()[0]
        msg = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(tuple(error["loc"]), msg) from None
