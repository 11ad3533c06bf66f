"""SQLModel tables and their API shapes. Importing this package registers every table."""

from deeployd.models import (
    a2a,  # noqa: F401  (registers the a2a_tasks/a2a_push_configs tables)
    agent,  # noqa: F401  (registers the agents/runs/alerts tables)
    memory,  # noqa: F401  (registers the agent_memories table)
    pipeline,  # noqa: F401  (registers the pipeline tables)
    voice,  # noqa: F401  (registers the voice_usage table)
)
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
