from datetime import datetime

from sqlalchemy import Column, DateTime, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from deeployd.models.base import ApiModel, utcnow


class SecretBase(ApiModel):
    name: str = Field(min_length=1, max_length=128, regex=r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretCreate(SecretBase):
    value: str = Field(min_length=1, max_length=65536)


class Secret(SQLModel, table=True):
    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id", index=True)
    name: str
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class SecretPublic(SecretBase):
    """A secret as the API shows it: its name, never its value."""

    created_at: datetime
    updated_at: datetime
