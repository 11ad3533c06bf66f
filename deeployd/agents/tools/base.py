"""The tool contract and registry.

A tool is anything with `name`, `description`, `parameters` (JSON Schema) and
`async run(args, ctx)` returning JSON-able data. Most tools subclass `BaseTool`, which derives
`parameters` from a pydantic `Args` model and validates the model's arguments against it, so a
bad call raises `ToolError` with a message the run feeds back to the model as the tool result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from deeployd.agents.providers.base import ToolSpec

if TYPE_CHECKING:
    from deeployd.services import Services


class ToolError(Exception):
    """A tool call failed in a way the model should hear about (bad arguments, refused URL...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ToolContext:
    org_id: str
    run_id: str
    conversation_id: str
    agent_id: str
    services: Services
    # Publish a Command Center event for this run (e.g. "run:memory_op"); the caller adds
    # runId/agentId and picks the stream.
    publish: Callable[[str, dict[str, Any]], Awaitable[None]]


@runtime_checkable
class Tool(Protocol):
    # Read-only: a plain class attribute (`name = "calculator"`) satisfies these.
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]: ...  # JSON Schema of the arguments object

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any: ...


class BaseTool:
    """Convenience base: declare `name`, `description`, an `Args` model and `execute`."""

    name: str
    description: str
    Args: ClassVar[type[BaseModel]]

    @property
    def parameters(self) -> dict[str, Any]:
        return json_schema(self.Args)

    def validate(self, args: dict[str, Any]) -> Any:
        if "_raw" in args and len(args) == 1:
            raise ToolError(
                f"the arguments for {self.name} were not a JSON object: {str(args['_raw'])[:200]}"
            )
        try:
            return self.Args.model_validate(args)
        except ValidationError as exc:
            raise ToolError(f"invalid arguments for {self.name}: {format_errors(exc)}") from None

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        return await self.execute(self.validate(args), ctx)

    async def execute(self, params: Any, ctx: ToolContext) -> Any:  # pragma: no cover
        raise NotImplementedError


def format_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(p) for p in error["loc"]) or "(arguments)"
        parts.append(f"{loc}: {error['msg']}")
    return "; ".join(parts)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema without pydantic's `title` noise (models read it as prompt)."""
    return _strip_titles(model.model_json_schema(by_alias=True))


def _strip_titles(node: Any, in_properties: bool = False) -> Any:
    # Inside "properties" the keys are argument names (one may well be called "title").
    if isinstance(node, dict):
        return {
            k: _strip_titles(v, not in_properties and k == "properties")
            for k, v in node.items()
            if in_properties or k != "title"
        }
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


# --- registry ---------------------------------------------------------------------------------

_TOOLS: dict[str, Tool] = {}


def register_tool(tool: Tool, *, replace: bool = False) -> Tool:
    """Make `tool` available to agents by its name (call at import time of your module)."""
    if tool.name in _TOOLS and not replace:
        raise ValueError(f"a tool named {tool.name!r} is already registered")
    _TOOLS[tool.name] = tool
    return tool


def get_tool(name: str) -> Tool:
    """The tool registered under `name`; unknown names raise KeyError."""
    try:
        return _TOOLS[name]
    except KeyError:
        raise KeyError(f"unknown tool {name!r}; known: {', '.join(sorted(_TOOLS))}") from None


def list_tools() -> list[Tool]:
    return [_TOOLS[name] for name in sorted(_TOOLS)]


def tool_specs(names: Iterable[str]) -> list[ToolSpec]:
    """What the model is told about these tools (unknown names raise KeyError)."""
    return [
        ToolSpec(name=tool.name, description=tool.description, parameters=tool.parameters)
        for tool in (get_tool(name) for name in names)
    ]


async def run_tool(name: str, args: dict[str, Any], ctx: ToolContext) -> Any:
    """Run a tool by name; an unknown name is a ToolError (the model asked for something odd)."""
    try:
        tool = get_tool(name)
    except KeyError as exc:
        raise ToolError(str(exc.args[0])) from None
    return await tool.run(args, ctx)
