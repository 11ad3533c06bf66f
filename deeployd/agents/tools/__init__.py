"""Tools agents can call. Importing this package registers the built-ins:
`http_request`, `calculator`, `current_time`, `memory_search`, `memory_write`.

    from deeployd.agents.tools import get_tool, tool_specs, run_tool, ToolContext, ToolError
"""

from deeployd.agents.tools import calculator, current_time, http_request, memory
from deeployd.agents.tools.base import (
    BaseTool,
    Tool,
    ToolContext,
    ToolError,
    get_tool,
    list_tools,
    register_tool,
    run_tool,
    tool_specs,
)

__all__ = [
    "BaseTool",
    "Tool",
    "ToolContext",
    "ToolError",
    "calculator",
    "current_time",
    "get_tool",
    "http_request",
    "list_tools",
    "memory",
    "register_tool",
    "run_tool",
    "tool_specs",
]
