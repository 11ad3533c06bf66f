from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from deeployd.models.base import ApiModel, utcnow


class Scope(StrEnum):
    admin = "admin"
    write = "write"
    read = "read"


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: str = Field(primary_key=True)
    name: str = Field(unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class ApiKeyBase(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.read, Scope.write])


class ApiKeyCreate(ApiKeyBase):
    pass


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id", index=True)
    name: str
    prefix: str
    key_hash: str = Field(unique=True, index=True)
    scopes: list[str] = Field(sa_column=Column(ARRAY(String), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ApiKeyPublic(ApiKeyBase):
    id: str
    org_id: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    """Returned once, at creation: the only time the full key is visible."""

    key: str
