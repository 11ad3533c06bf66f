"""SQLModel tables and their API shapes. Importing this package registers every table."""

from deeployd.models.base import utcnow
from deeployd.models.event import Event
from deeployd.models.organization import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Organization,
)
from deeployd.models.secret import Secret, SecretCreate, SecretPublic

__all__ = [
    "ApiKey",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyPublic",
    "Event",
    "Organization",
    "Secret",
    "SecretCreate",
    "SecretPublic",
    "utcnow",
]
