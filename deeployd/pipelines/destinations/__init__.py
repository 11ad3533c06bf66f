"""Built-in destinations register themselves on import; this package imports them all:
`webhook`, `database`, `analytics` (Segment, Mixpanel, Amplitude, custom) and `notification`."""

from __future__ import annotations

from deeployd.pipelines.destinations import analytics, database, notification, webhook
from deeployd.pipelines.destinations.base import (
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

BUILT_IN = (webhook, database, analytics, notification)

__all__ = [
    "BUILT_IN",
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
