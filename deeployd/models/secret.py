import re
from datetime import datetime

from pydantic import field_validator
from sqlalchemy import Column, DateTime, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from deeployd.models.base import ApiModel, utcnow

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretBase(ApiModel):
    name: str = Field(min_length=1, max_length=128)

    @field_validator("name")
    @classmethod
    def _name_is_an_identifier(cls, value: str) -> str:
        # Names appear in `${secrets.NAME}` references, so they must be identifiers.
        if not SECRET_NAME.match(value):
            raise ValueError(
                "must start with a letter or underscore and contain only letters, digits and underscores"
            )
        return value


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
