"""A2A tasks: one row per task (state, history and artifacts in A2A 1.0 JSON) and the task's
push-notification configs. The wire shapes of the REST API live here too.

History and artifacts are stored as the protocol's own JSON (camelCase, as `MessageToDict`
writes it) so `GetTask` is a parse, not a translation.
"""

from datetime import datetime
from typing import Any

from pydantic import Field as PydanticField
from pydantic import field_validator
from sqlalchemy import Column, DateTime, Index, PrimaryKeyConstraint, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from deeployd.errors import Invalid
from deeployd.models.base import ApiModel

MAX_MESSAGE_CHARS = 100_000


def _ts() -> Any:
    return Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


class A2ATask(SQLModel, table=True):
    __tablename__ = "a2a_tasks"
    __table_args__ = (
        Index("ix_a2a_tasks_org_created", "org_id", "created_at"),
        Index("ix_a2a_tasks_org_context", "org_id", "context_id"),
        Index("ix_a2a_tasks_run", "run_id"),
    )

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id")
    agent_id: str
    context_id: str
    state: str
    workflow_id: str
    run_id: str | None = None
    conversation_id: str | None = None
    status_message: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    history: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    artifacts: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    metadata_: dict[str, Any] = Field(sa_column=Column("metadata", JSONB, nullable=False))
    last_input: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts())


class A2APushConfig(SQLModel, table=True):
    __tablename__ = "a2a_push_configs"
    __table_args__ = (PrimaryKeyConstraint("task_id", "id"),)

    task_id: str = Field(sa_column=Column(String, nullable=False))
    id: str = Field(sa_column=Column(String, nullable=False))
    org_id: str = Field(foreign_key="organizations.id")
    url: str
    token: str | None = None
    authentication: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(sa_column=_ts())


# --- the REST API's shapes ------------------------------------------------------------------


class A2APartIn(ApiModel):
    text: str | None = PydanticField(default=None, max_length=MAX_MESSAGE_CHARS)
    data: Any = None


class A2AMessageIn(ApiModel):
    """An A2A message as a REST caller may send it (only what the REST API understands)."""

    role: str = "user"
    parts: list[A2APartIn] = PydanticField(min_length=1, max_length=50)
    message_id: str | None = PydanticField(default=None, max_length=200)
    context_id: str | None = PydanticField(default=None, max_length=200)

    @field_validator("role")
    @classmethod
    def _user_only(cls, value: str) -> str:
        if value.lower() not in ("user", "role_user"):
            raise ValueError("a caller's message has role 'user'")
        return "user"


class A2ATaskCreate(ApiModel):
    agent_id: str = PydanticField(min_length=1, max_length=200)
    # Plain text, or an A2A message with text/data parts.
    message: str | A2AMessageIn
    context_id: str | None = PydanticField(default=None, max_length=200)

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str | A2AMessageIn) -> str | A2AMessageIn:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        if isinstance(value, str) and len(value) > MAX_MESSAGE_CHARS:
            raise ValueError(f"must be at most {MAX_MESSAGE_CHARS} characters")
        return value

    @staticmethod
    def user_message(parts: list[dict[str, Any]]) -> dict[str, Any]:
        """A caller's message in A2A 1.0 JSON."""
        return {"role": "ROLE_USER", "parts": parts}

    def a2a_message(self) -> dict[str, Any]:
        """The message in A2A 1.0 JSON; a part with neither text nor data is refused."""
        if isinstance(self.message, str):
            return self.user_message([{"text": self.message}])
        parts = []
        for i, part in enumerate(self.message.parts):
            if part.text is None and part.data is None:
                raise Invalid(("body", "message", "parts", i), "a part needs text or data")
            parts.append({"text": part.text} if part.text is not None else {"data": part.data})
        message = self.user_message(parts)
        if self.message.message_id:
            message["messageId"] = self.message.message_id
        return message

    def task_context_id(self) -> str | None:
        """The context the task joins: the body's, else the message's (None: a new one)."""
        if self.context_id:
            return self.context_id
        return None if isinstance(self.message, str) else self.message.context_id


class A2AFollowUp(ApiModel):
    content: str = PydanticField(min_length=1, max_length=MAX_MESSAGE_CHARS)


class A2ATaskList(ApiModel):
    tasks: list[dict[str, Any]]
    next_page_token: str | None = None
