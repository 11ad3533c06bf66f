"""Typed access to streamed agent events: `event.type`, `event.token`, `event.usage.total`."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

from deeployd.sdk.sse import StreamEvent

# The events that end a run's stream.
RUN_END_TYPES = frozenset({"done", "error"})


class Fields(dict[str, Any]):
    """A dict whose keys also read as attributes (snake_case or camelCase)."""

    def __getattr__(self, name: str) -> Any:
        for key in (name, to_camel(name)):
            if key in self:
                return wrap(self[key])
        raise AttributeError(name)


def wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Fields):
        return Fields(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


class AgentEvent(StreamEvent):
    """A stream event with attribute access to its fields.

    `token` -> `.token`; `tool_call` -> `.name`, `.arguments`, `.tool_call_id`;
    `tool_result` -> `.tool_call_id`, `.result`; `approval_required` -> `.tool_call_id`, `.name`,
    `.arguments`; `done` -> `.usage.total`, `.cost`; `error` -> `.message`, `.code`;
    Command Center events -> `.run_id`, `.agent_id`, `.run`, `.alert`, ...
    """

    def __getattr__(self, name: str) -> Any:
        data = object.__getattribute__(self, "data")
        for key in (name, to_camel(name)):
            if key in data:
                return wrap(data[key])
        raise AttributeError(name)

    @property
    def is_control(self) -> bool:
        """A frame without an id (e.g. `slow_consumer`): not part of the run's history."""
        return self.id is None

    @classmethod
    def of(cls, event: StreamEvent) -> AgentEvent:
        return cls(event.id, event.data)
