"""The `webhook` source: items arrive through the pipeline's own HTTP endpoint.

Its body holds at most a `secret` (a reference to a stored secret) that signs the requests.
"""

from __future__ import annotations

from typing import Any

from deeployd.pipelines.sources.plugin import SourceType, source_type
from deeployd.pipelines.transforms.errors import ConfigError
from deeployd.secretstore import SECRET_REF


def validate(source: dict[str, Any]) -> None:
    for key in source:
        if key not in ("type", "secret"):
            raise ConfigError((key,), "unknown field")
    secret = source.get("secret")
    if secret is not None and (not isinstance(secret, str) or not SECRET_REF.fullmatch(secret)):
        raise ConfigError(
            ("secret",),
            "must be a secret reference like ${secrets.NAME} (store the value via /api/secrets)",
        )


@source_type("webhook")
class WebhookSource(SourceType):
    def validate(self, source: dict[str, Any]) -> None:
        validate(source)
