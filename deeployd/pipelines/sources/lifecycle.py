"""What the pipeline API calls when a pipeline's life changes (the hooks the sources need).

| API route                              | call                                              |
|----------------------------------------|---------------------------------------------------|
| POST /pipelines (validation, -> 422)   | `await check_source(services, org_id, source)`    |
| POST, PUT /pipelines (-> 422)          | `await check_destination(services, org_id, destination)` |
| POST /pipelines (after the row commits)| `await on_pipeline_created(services, org_id, id, source)` |
| POST /pipelines/:id/start              | `await on_pipeline_started(services, org_id, id, source)` |
| POST /pipelines/:id/pause              | `await on_pipeline_paused(services, org_id, id, source)`  |
| POST /pipelines/:id/resume             | `await on_pipeline_resumed(services, org_id, id, source)` |
| POST /pipelines/:id/stop               | `await on_pipeline_stopped(services, org_id, id, source)` |
| DELETE /pipelines/:id                  | `await on_pipeline_deleted(services, org_id, id, source)` |
| PUT/PATCH (source changed, running)    | `on_pipeline_stopped(old source)` then `on_pipeline_started(new)` |

Every hook is idempotent (safe to call twice, e.g. on a retried request) and calls the source
type's own hook (`SourceType` in the `SOURCES` registry), a no-op for types that need nothing. `check_source`/`on_pipeline_started` raise `deeployd.errors.Invalid`
with loc ("body", "source", ...) — the API renders it as a 422 such as
`errors: ["source.table: table pipeline_org_x.orders does not exist"]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deeployd import tenantdb
from deeployd.errors import Invalid
from deeployd.pipelines.contract import ACTIVE_STATUSES, PipelineStatus
from deeployd.pipelines.sources import SOURCES, SourceType
from deeployd.pipelines.sources.plugin import PipelineSource
from deeployd.pipelines.transforms.errors import ConfigError
from deeployd.secretstore import MissingSecretError, SecretStore

if TYPE_CHECKING:
    from deeployd.services import Services

_NOTHING = SourceType()  # an unknown type (validation refuses it) needs nothing either


def _plugin(source: dict[str, Any]) -> SourceType:
    kind = source.get("type")
    return (SOURCES.find(kind) if isinstance(kind, str) else None) or _NOTHING


def _prefixed(exc: ConfigError) -> Invalid:
    return Invalid(("body", "source", *exc.loc), exc.msg)


async def check_source(services: Services, org_id: str, source: dict[str, Any]) -> None:
    """Checks that need I/O (the CDC table exists); Invalid on ("body", "source", ...)."""
    try:
        await _plugin(source).check(services, org_id, source)
    except ConfigError as exc:
        raise _prefixed(exc) from None


async def check_destination(services: Services, org_id: str, destination: dict[str, Any]) -> None:
    """A `database` destination's connection secret, when already stored, is checked now (the
    worker checks it again before every connection): 422 on destination.config.connection."""
    config = destination.get("config") or {}
    if destination.get("type") != "database" or not config.get("connection"):
        return
    try:
        dsn = await SecretStore(services.db, services.secret_box).resolve(
            org_id, config["connection"]
        )
    except MissingSecretError:
        return  # stored later: delivery resolves and checks it
    try:
        await tenantdb.check_dsn(
            str(dsn),
            allow_private=services.settings.allow_private_urls,
            platform_url=services.settings.database_url,
        )
    except tenantdb.UnsafeDSNError as exc:
        raise Invalid(("body", "destination", "config", "connection"), f"refused: {exc}") from None


async def on_pipeline_created(
    services: Services, org_id: str, pipeline_id: str, source: dict[str, Any]
) -> None:
    """Remember where the event log stands: events published before now are never routed."""
    async with services.db.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO pipeline_source_state (pipeline_id, org_id, start_event_id) "
            "SELECT %s, %s, coalesce(max(id), 0) FROM events "
            "ON CONFLICT (pipeline_id) DO NOTHING",
            (pipeline_id, org_id),
        )


async def on_pipeline_started(
    services: Services, org_id: str, pipeline_id: str, source: dict[str, Any]
) -> None:
    await on_pipeline_created(services, org_id, pipeline_id, source)  # if the API skipped it
    try:
        await _plugin(source).on_started(PipelineSource(services, org_id, pipeline_id, source))
    except ConfigError as exc:
        raise _prefixed(exc) from None


async def on_pipeline_paused(
    services: Services, org_id: str, pipeline_id: str, source: dict[str, Any]
) -> None:
    await _plugin(source).on_paused(
        PipelineSource(services, org_id, pipeline_id, source), paused=True
    )


async def on_pipeline_resumed(
    services: Services, org_id: str, pipeline_id: str, source: dict[str, Any]
) -> None:
    await _plugin(source).on_paused(
        PipelineSource(services, org_id, pipeline_id, source), paused=False
    )


async def on_pipeline_stopped(
    services: Services, org_id: str, pipeline_id: str, source: dict[str, Any]
) -> None:
    await _plugin(source).on_stopped(PipelineSource(services, org_id, pipeline_id, source))


async def on_pipeline_updated(
    services: Services,
    org_id: str,
    pipeline_id: str,
    old_source: dict[str, Any],
    new_source: dict[str, Any],
    status: str,
) -> None:
    """A running/paused pipeline whose source changed: tear the old source down, set up the new."""
    if old_source == new_source or status not in ACTIVE_STATUSES:
        return
    await on_pipeline_stopped(services, org_id, pipeline_id, old_source)
    await on_pipeline_started(services, org_id, pipeline_id, new_source)
    if status == PipelineStatus.paused:
        await on_pipeline_paused(services, org_id, pipeline_id, new_source)


async def on_pipeline_deleted(
    services: Services, org_id: str, pipeline_id: str, source: dict[str, Any]
) -> None:
    await on_pipeline_stopped(services, org_id, pipeline_id, source)
    async with services.db.pool.connection() as conn:
        await conn.execute(
            "DELETE FROM pipeline_source_state WHERE pipeline_id = %s AND org_id = %s",
            (pipeline_id, org_id),
        )
