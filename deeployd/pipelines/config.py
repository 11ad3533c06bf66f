"""Validating a pipeline body beyond its outline: every error names the exact path.

Transforms are compiled by the engine (`compile_chain`), which locates errors inside the body
(`transforms[1].config.expression.fullName`). Sources and destinations validate their own
config; the database destination is also checked against the real table. All errors become one
422 through `RequestValidationError` with `loc=("body", ...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.exceptions import RequestValidationError

from deeployd import netguard
from deeployd.pipelines.destinations import ConfigError, get_destination
from deeployd.secretstore import SECRET_REF

SOURCE_TYPES = ("agent_execution", "webhook", "database_change", "api_event", "schedule")

# Source validators: `fn(source_body) -> None`, raising ConfigError with a loc relative to the
# source body (e.g. ("agentIds", 0)). Sources register theirs with `register_source_validator`.
_SOURCE_VALIDATORS: dict[str, Callable[[dict[str, Any]], None]] = {}


def register_source_validator(source_type: str, fn: Callable[[dict[str, Any]], None]) -> None:
    _SOURCE_VALIDATORS[source_type] = fn


def _validate_webhook_source(source: dict[str, Any]) -> None:
    for key in source:
        if key not in ("type", "secret"):
            raise ConfigError((key,), "unknown field")
    secret = source.get("secret")
    if secret is not None and (not isinstance(secret, str) or not SECRET_REF.fullmatch(secret)):
        raise ConfigError(
            ("secret",),
            "must be a secret reference like ${secrets.NAME} (store the value via /api/secrets)",
        )


register_source_validator("webhook", _validate_webhook_source)


def _load_source_modules() -> None:
    """Import the sources package (if present) so its validators are registered."""
    import importlib.util

    if importlib.util.find_spec("deeployd.pipelines.sources") is not None:
        import deeployd.pipelines.sources  # noqa: F401


def compile_transforms(transforms: list[dict[str, Any]]) -> Any:
    from deeployd.pipelines.transforms import compile_chain

    return compile_chain(transforms)


def config_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every semantic error of a pipeline body (camelCase dict), as RequestValidationError dicts."""
    errors: list[dict[str, Any]] = []

    def add(prefix: tuple[str | int, ...], exc: ConfigError) -> None:
        errors.append({"loc": ("body", *prefix, *exc.loc), "msg": exc.msg, "type": "value_error"})

    _load_source_modules()
    source = body["source"]
    if source["type"] not in SOURCE_TYPES:
        errors.append(
            {
                "loc": ("body", "source", "type"),
                "msg": f"unknown source type {source['type']!r}; one of {', '.join(SOURCE_TYPES)}",
                "type": "value_error",
            }
        )
    else:
        validator = _SOURCE_VALIDATORS.get(source["type"])
        if validator is not None:
            try:
                validator(source)
            except ConfigError as exc:
                add(("source",), exc)
    try:
        compile_transforms(body["transforms"])
    except ConfigError as exc:
        add((), exc)
    destination = body["destination"]
    try:
        dest = get_destination(destination["type"])
    except KeyError:
        from deeployd.pipelines.destinations import destination_types

        errors.append(
            {
                "loc": ("body", "destination", "type"),
                "msg": f"unknown destination type {destination['type']!r}; "
                f"one of {', '.join(destination_types())}",
                "type": "value_error",
            }
        )
    else:
        try:
            dest.validate(destination.get("config") or {})
        except ConfigError as exc:
            add(("destination",), exc)
    return errors


async def validate_pipeline_body(
    body: dict[str, Any], org_id: str, db: Any, *, allow_private_urls: bool = False
) -> None:
    """Raise RequestValidationError (-> 422) naming every bad path of the body."""
    errors = config_errors(body)
    destination = body["destination"]
    url = (destination.get("config") or {}).get("url")
    if not errors and isinstance(url, str) and not SECRET_REF.search(url):
        # Refuse private/loopback targets up front too (the worker checks again on delivery,
        # since DNS may change).
        try:
            await netguard.check_outbound_url(url, allow_private=allow_private_urls)
        except netguard.UnsafeURLError as exc:
            errors.append(
                {
                    "loc": ("body", "destination", "config", "url"),
                    "msg": str(exc),
                    "type": "value_error",
                }
            )
    if not errors and destination["type"] == "database":
        config = destination.get("config") or {}
        if not config.get("connection"):  # other databases are checked in the worker
            from deeployd.pipelines.destinations.database import (
                check_against_table,
                create_declared_table,
            )

            try:
                async with db.pool.connection() as conn:
                    if config.get("createTable"):
                        await create_declared_table(conn, config, org_id)
                    await check_against_table(conn, config, org_id)
            except ConfigError as exc:
                errors.append(
                    {
                        "loc": ("body", "destination", *exc.loc),
                        "msg": exc.msg,
                        "type": "value_error",
                    }
                )
    if errors:
        raise RequestValidationError(errors)
