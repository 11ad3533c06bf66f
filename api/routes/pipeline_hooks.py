"""The `webhook` source: `POST /api/streaming/hooks/{pipelineId}` (no API key).

When the source has a `secret`, requests must carry a valid Standard Webhooks signature
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`, timestamp
within 5 minutes) or get 401. `webhook-id` doubles as the dedup key: a sender's retry of the
same message is accepted again but not appended twice.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.input_guard import parse_items_body
from api.routes.pipelines import ingest_response, read_body
from deeployd.pipelines import service
from deeployd.pipelines.signing import SignatureError, verify

router = APIRouter(prefix="/api/streaming/hooks", tags=["pipelines"])


@router.post("/{pipeline_id}", status_code=202)
async def receive_webhook(
    pipeline_id: str, request: Request, services: ServicesDep
) -> JSONResponse:
    """Accept a JSON object (one item) or an array of objects into a webhook pipeline."""
    target = await service.webhook_target(services, pipeline_id)
    raw = await read_body(request)
    secret = await service.webhook_secret(services, target)
    if secret is not None:
        try:
            verify(secret, {k.lower(): v for k, v in request.headers.items()}, raw)
        except SignatureError as exc:
            raise HTTPException(401, f"invalid webhook signature: {exc}") from None
    body: Any = parse_items_body(raw)
    items = (
        service.checked_items(body, ("body",))
        if isinstance(body, list)
        else [service.one_item(body)]
    )
    msg_id = request.headers.get("webhook-id")
    keys = None
    if msg_id:
        keys = [msg_id] if len(items) == 1 else [f"{msg_id}:{i}" for i in range(len(items))]
    return await ingest_response(
        service.ingest(services, target.org_id, pipeline_id, items, dedup_keys=keys)
    )
