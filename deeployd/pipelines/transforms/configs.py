"""Shared config validation: pydantic models with the docs' camelCase keys -> ConfigError."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictConfig(BaseModel):
    """Unknown keys are errors: a typo such as `opertor` must not silently change behaviour."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def validate_config(model: type[M], raw: Any, loc: tuple[str | int, ...]) -> M:
    if not isinstance(raw, dict):
        raise ConfigError(loc, "config must be an object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        raise ConfigError((*loc, *err["loc"]), msg) from None
