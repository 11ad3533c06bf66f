"""The web console: static files served by the API itself (no CDN), plus its small config."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.deps import CurrentPrincipal, SettingsDep

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console", include_in_schema=False)
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/api/console/config", summary="What the console needs to link to Temporal")
async def console_config(_: CurrentPrincipal, settings: SettingsDep) -> dict[str, Any]:
    return {
        "temporalUiUrl": settings.temporal_ui_url.rstrip("/"),
        "temporalNamespace": settings.temporal_namespace,
    }


def static_files() -> StaticFiles:
    return StaticFiles(directory=CONSOLE_DIR, html=True)
