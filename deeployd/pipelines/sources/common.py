"""What every source config shares: camelCase pydantic models whose errors become ConfigError."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from deeployd.pipelines.transforms.errors import ConfigError


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
