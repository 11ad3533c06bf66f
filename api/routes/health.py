import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Database and Temporal reachability (no auth)")
async def healthz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        await services.db.ping(wait_s=3)
        checks["database"] = {"ok": True}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": str(exc)}
    if services.temporal is None:
        checks["temporal"] = {"ok": False, "error": "not connected"}
    else:
        try:
            await asyncio.wait_for(services.temporal.service_client.check_health(), timeout=3)
            checks["temporal"] = {"ok": True}
        except Exception as exc:
            checks["temporal"] = {"ok": False, "error": str(exc) or type(exc).__name__}
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
