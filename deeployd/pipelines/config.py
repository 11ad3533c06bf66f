"""Validating a pipeline body beyond its outline: every error names the exact path.

Transforms are compiled by the engine (`compile_chain`), which locates errors inside the body
(`transforms[1].config.expression.fullName`). Sources and destinations validate their own
config (each found in its registry); a destination that `ChecksAtCreate` (the database one: its
table) is also checked against the world. All errors become one `Invalid` (422) with
`loc=("body", ...)`.
"""

from __future__ import annotations

from typing import Any

from deeployd import netguard
from deeployd.errors import FieldError, Invalid
from deeployd.pipelines.destinations import (
    DESTINATIONS,
    ChecksAtCreate,
    ConfigError,
    destination_types,
)
from deeployd.pipelines.sources import validate_source
from deeployd.pipelines.transforms import compile_chain
from deeployd.secretstore import SECRET_REF


def config_errors(body: dict[str, Any]) -> list[FieldError]:
    """Every semantic error of a pipeline body (camelCase dict), located from the request root."""
    errors: list[FieldError] = []

    def add(prefix: tuple[str | int, ...], exc: ConfigError) -> None:
        errors.append(FieldError(("body", *prefix, *exc.loc), exc.msg))

    try:
        validate_source(body["source"])
    except ConfigError as exc:
        add((), exc)
    try:
        compile_chain(body["transforms"])
    except ConfigError as exc:
        add((), exc)
    destination = body["destination"]
    dest = DESTINATIONS.find(destination["type"])
    if dest is None:
        add(
            ("destination",),
            ConfigError(
                ("type",),
                f"unknown destination type {destination['type']!r}; "
                f"one of {', '.join(destination_types())}",
            ),
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
    """Raise Invalid (-> 422) naming every bad path of the body."""
    errors = config_errors(body)
    destination = body["destination"]
    url = (destination.get("config") or {}).get("url")
    if not errors and isinstance(url, str) and not SECRET_REF.search(url):
        # Refuse private/loopback targets up front too (the worker checks again on delivery,
        # since DNS may change).
        try:
            await netguard.check_outbound_url(url, allow_private=allow_private_urls)
        except netguard.UnsafeURLError as exc:
            errors.append(FieldError(("body", "destination", "config", "url"), str(exc)))
    dest = DESTINATIONS.find(destination["type"])
    if not errors and isinstance(dest, ChecksAtCreate):
        try:
            await dest.check(db, org_id, destination.get("config") or {})
        except ConfigError as exc:
            errors.append(FieldError(("body", "destination", *exc.loc), exc.msg))
    if errors:
        raise Invalid.of(errors)
