"""Temporal activities. Each family is a class built once in the worker with the clients it needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.events import EventActivities
from deeployd.services import Services


def build_activities(services: Services) -> list[Callable[..., Any]]:
    """Every activity the worker serves, bound to this process's shared clients."""
    events = EventActivities(services)
    return [events.publish_events, events.prune_events]
