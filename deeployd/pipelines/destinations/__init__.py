"""Built-in destinations register themselves on import; this package imports them all:
`webhook`, `database`, `analytics` (Segment, Mixpanel, Amplitude, custom) and `notification`.

Adding one: a module with a class having `type`, `validate(config)` and `deliver(ctx, delivery)`
that calls `register_destination(TheDestination())`, plus its name in the import line below."""

from __future__ import annotations

from deeployd.pipelines.destinations import analytics, database, notification, webhook  # noqa: F401
from deeployd.pipelines.destinations.base import (
    DESTINATIONS,
    ChecksAtCreate,
    ConfigError,
    Delivery,
    DeliveryContext,
    DeliveryError,
    Destination,
    destination_types,
    get_destination,
    refuses_content,
    register_destination,
    reject,
    unstorable_reason,
)

__all__ = [
    "DESTINATIONS",
    "ChecksAtCreate",
    "ConfigError",
    "Delivery",
    "DeliveryContext",
    "DeliveryError",
    "Destination",
    "destination_types",
    "get_destination",
    "refuses_content",
    "register_destination",
    "reject",
    "unstorable_reason",
]
