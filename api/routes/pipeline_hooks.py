"""The `webhook` source: `POST /api/streaming/hooks/{pipelineId}` (no API key).

When the source has a `secret`, requests must carry a valid Standard Webhooks signature
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`, timestamp
within 5 minutes) or get 401. `webhook-id` doubles as the dedup key: a sender's retry of the
same message is accepted again but not appended twice.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.input_guard import parse_items_body
from api.routes.pipelines import ingest_response, read_body
from deeployd.pipelines.ingest import MAX_BATCH_ITEMS
from deeployd.pipelines.signing import SignatureError, verify
from deeployd.secretstore import MissingSecretError, SecretStore

router = APIRouter(prefix="/api/streaming/hooks", tags=["pipelines"])

_NOT_FOUND = HTTPException(404, "no webhook pipeline with this id")


@router.post("/{pipeline_id}", status_code=202)
async def receive_webhook(
    pipeline_id: str, request: Request, services: ServicesDep
) -> JSONResponse:
    """Accept a JSON object (one item) or an array of objects into a webhook pipeline."""
    async with services.db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT org_id, source FROM pipelines WHERE id = %s", (pipeline_id,)
        )
        row = await cursor.fetchone()
    if row is None or row[1].get("type") != "webhook":
        raise _NOT_FOUND
    org_id, source = row[0], row[1]
    raw = await read_body(request)
    if source.get("secret"):
        try:
            secret = await SecretStore(services.db, services.secret_box).resolve(
                org_id, source["secret"]
            )
        except MissingSecretError:
            raise HTTPException(503, "the pipeline's webhook secret is not configured") from None
        try:
            verify(secret, {k.lower(): v for k, v in request.headers.items()}, raw)
        except SignatureError as exc:
            raise HTTPException(401, f"invalid webhook signature: {exc}") from None
    body: Any = parse_items_body(raw)
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > MAX_BATCH_ITEMS:
        raise RequestValidationError(
            [
                {
                    "loc": ("body",),
                    "msg": f"must hold 1 to {MAX_BATCH_ITEMS} items",
                    "type": "value_error",
                }
            ]
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            loc = ("body", index) if isinstance(body, list) else ("body",)
            raise RequestValidationError(
                [{"loc": loc, "msg": "an item must be a JSON object", "type": "value_error"}]
            )
    msg_id = request.headers.get("webhook-id")
    keys = None
    if msg_id:
        keys = [msg_id] if len(items) == 1 else [f"{msg_id}:{i}" for i in range(len(items))]
    return await ingest_response(services, org_id, pipeline_id, items, dedup_keys=keys)
