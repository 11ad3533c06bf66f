"""Built-in destinations register themselves on import; this package imports them all.

`webhook` and `database` live here; `analytics` and `notification` are the sources engineer's
modules and are picked up as soon as they exist.
"""

from __future__ import annotations

import importlib
import importlib.util

from deeployd.pipelines.destinations.base import (
    ConfigError,
    Delivery,
    DeliveryContext,
    DeliveryError,
    Destination,
    destination_types,
    get_destination,
    register_destination,
)

for _name in ("webhook", "database", "analytics", "notification"):
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")

__all__ = [
    "ConfigError",
    "Delivery",
    "DeliveryContext",
    "DeliveryError",
    "Destination",
    "destination_types",
    "get_destination",
    "register_destination",
]
