"""`current_time`: the current date and time, in UTC or an IANA time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from deeployd.agents.tools.base import BaseTool, ToolContext, ToolError, register_tool


class CurrentTimeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone, e.g. 'Europe/Paris' or 'America/New_York'. Default: UTC.",
    )


class CurrentTime(BaseTool):
    name = "current_time"
    description = "Get the current date and time (ISO 8601), optionally in a given time zone."
    Args = CurrentTimeArgs

    async def execute(self, params: CurrentTimeArgs, ctx: ToolContext) -> dict[str, Any]:
        name = params.timezone or "UTC"
        try:
            zone = UTC if name.upper() == "UTC" else ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(
                f"unknown time zone {name!r}; use an IANA name like 'Europe/Paris'"
            ) from None
        now = datetime.now(zone)
        return {
            "timezone": name,
            "iso": now.isoformat(timespec="seconds"),
            "unix": int(now.timestamp()),
            "weekday": now.strftime("%A"),
        }


register_tool(CurrentTime())
