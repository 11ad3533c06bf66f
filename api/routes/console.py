"""The web console: static files served by the API itself (no CDN), plus its small config."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.deps import CurrentPrincipal, ServicesDep, SettingsDep
from deeployd.agents.providers import provider_names
from deeployd.agents.tools import list_tools
from deeployd.models.pipeline import PipelineCreate
from deeployd.pipelines import service as pipelines
from deeployd.pipelines.destinations import destination_types
from deeployd.pipelines.transforms import TRANSFORMS

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console", include_in_schema=False)
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get(
    "/api/console/config",
    summary="What the console needs: Temporal links, providers, tools, pipeline plugin types",
)
async def console_config(_: CurrentPrincipal, settings: SettingsDep) -> dict[str, Any]:
    return {
        "temporalUiUrl": settings.temporal_ui_url.rstrip("/"),
        "temporalNamespace": settings.temporal_namespace,
        "providers": provider_names(),
        "tools": [{"name": tool.name, "description": tool.description} for tool in list_tools()],
        # The pipeline builder offers exactly what the API accepts.
        "transformTypes": TRANSFORMS.names(),
        "destinationTypes": destination_types(),
    }


@router.post(
    "/api/console/pipelines/validate",
    status_code=204,
    summary="Check a pipeline body as creating it would, without creating anything",
)
async def validate_pipeline(
    body: PipelineCreate, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """204 when `POST /api/streaming/pipelines` would accept the body; else the same 422."""
    await pipelines.validate(services, principal.org_id, body)
    return Response(status_code=204)


def static_files() -> StaticFiles:
    return StaticFiles(directory=CONSOLE_DIR, html=True)
