"""Standard Webhooks signatures (https://www.standardwebhooks.com/), used both ways:
the webhook source verifies them, the webhook destination sends them.

signature = base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")), sent as
`webhook-signature: v1,<signature>` (space-separated list; any v1 entry may match). The key is
the base64 secret after an optional `whsec_` prefix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

TOLERANCE_S = 300


class SignatureError(ValueError):
    pass


def secret_key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        # Not base64: use the text itself, so any shared string works as a secret.
        return raw.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(
    secret: str, msg_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> None:
    """Raise SignatureError unless the headers carry a valid, fresh v1 signature of `body`."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not an integer") from exc
    current = now if now is not None else time.time()
    if abs(current - ts) > TOLERANCE_S:
        raise SignatureError("webhook-timestamp is more than 5 minutes off")
    expected = sign(secret, msg_id, ts, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate, expected):
            return
    raise SignatureError("no valid v1 signature")
