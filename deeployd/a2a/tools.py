"""Agent tools of the A2A feature, registered in the shared tools registry on import.

- `ask_user`: the agent needs a person. Inside an A2A task the task moves to `input-required`
  with the question as its status message; the caller's follow-up message is the tool's result.
- `call_agent`: delegate to a remote A2A agent (ours or anyone's) by its agent-card URL, with
  the official a2a-sdk client; the remote task's progress is streamed into the calling run's
  events and its artifacts are handed back to the model.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from deeployd.agents.contract import run_stream
from deeployd.agents.tools.base import BaseTool, ToolContext, ToolError, get_tool, register_tool

ASK_USER = "ask_user"
CALL_AGENT = "call_agent"
# What the model gets back of a remote agent's output.
MAX_REMOTE_TEXT = 20_000
CALL_AGENT_TIMEOUT_S = 300.0
_SECRET_REF = re.compile(r"^\$\{secrets\.[A-Za-z_][A-Za-z0-9_]*\}$")


class AskUserArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=4000, description="What you need to know.")


class AskUser(BaseTool):
    name = ASK_USER
    description = (
        "Ask the person you are working for a question and wait for the answer. Use it when "
        "you need information or a decision only they can give."
    )
    Args = AskUserArgs

    async def execute(self, params: AskUserArgs, ctx: ToolContext) -> dict[str, Any]:
        from deeployd.a2a.store import task_for_run

        task = await task_for_run(ctx.services.db.pool, ctx.org_id, ctx.run_id)
        if task is None or task["last_input"] is None:
            raise ToolError("nobody can answer here: ask_user works inside A2A tasks")
        return {"question": params.question, "answer": task["last_input"]}


class CallAgentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    agent_url: str = Field(
        alias="agentUrl",
        min_length=1,
        max_length=2000,
        description="The remote agent's base URL (its card is at <agentUrl>/.well-known/"
        "agent-card.json) or the card URL itself.",
    )
    message: str = Field(min_length=1, max_length=50_000, description="The task for the agent.")
    api_key: str | None = Field(
        default=None,
        alias="apiKey",
        description="A ${secrets.NAME} reference to the bearer key the remote agent expects.",
    )


class CallAgent(BaseTool):
    name = CALL_AGENT
    description = (
        "Delegate a task to another agent over the A2A protocol and return its answer and "
        "artifacts."
    )
    Args = CallAgentArgs

    async def execute(self, params: CallAgentArgs, ctx: ToolContext) -> dict[str, Any]:
        from deeployd.a2a.remote import call_remote_agent
        from deeployd.netguard import UnsafeURLError, check_outbound_url

        settings = ctx.services.settings
        try:
            await check_outbound_url(params.agent_url, allow_private=settings.allow_private_urls)
        except UnsafeURLError as exc:
            raise ToolError(f"agentUrl refused: {exc}") from None
        headers: dict[str, str] = {}
        if params.api_key:
            if not _SECRET_REF.match(params.api_key):
                raise ToolError("apiKey must be a ${secrets.NAME} reference")
            from deeployd.secretstore import MissingSecretError, SecretStore

            try:
                key = await SecretStore(ctx.services.db, ctx.services.secret_box).resolve(
                    ctx.org_id, params.api_key
                )
            except MissingSecretError as exc:
                raise ToolError(str(exc)) from None
            headers["Authorization"] = f"Bearer {key}"
        publisher = ctx.services.publisher

        async def progress(data: dict[str, Any]) -> None:
            # The remote task's progress, live on the calling run's stream.
            publisher.publish_nowait(ctx.org_id, run_stream(ctx.run_id), "remote_task", data)

        async def check(url: str) -> None:
            await check_outbound_url(url, allow_private=settings.allow_private_urls)

        try:
            return await call_remote_agent(
                params.agent_url,
                params.message,
                headers=headers,
                on_progress=progress,
                timeout_s=CALL_AGENT_TIMEOUT_S,
                max_text=MAX_REMOTE_TEXT,
                check_url=check,
            )
        except UnsafeURLError as exc:
            raise ToolError(f"the agent card names a refused URL: {exc}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise ToolError(f"the remote agent could not be reached: {exc}") from None
        except Exception as exc:  # the a2a client's own errors: the model hears about them
            raise ToolError(f"the remote agent call failed: {type(exc).__name__}: {exc}") from None


def _register() -> None:
    for tool in (AskUser(), CallAgent()):
        try:
            get_tool(tool.name)
        except KeyError:
            register_tool(tool)


_register()
