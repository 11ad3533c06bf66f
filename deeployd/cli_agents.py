"""`deeployd chat <agent>` and `deeployd tail`: agent runs in the terminal.

Both talk to the API at DEEPLOYD_URL (default http://localhost:8000) with DEEPLOYD_API_KEY, or
the dev key `deeployd dev` keeps in <data-dir>/dev-api-key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from deeployd.settings import Settings, get_settings

DEFAULT_URL = "http://localhost:8000"


def _connection(args: argparse.Namespace) -> tuple[str, str]:
    url = args.url or os.environ.get("DEEPLOYD_URL") or DEFAULT_URL
    key = os.environ.get("DEEPLOYD_API_KEY")
    if not key:
        key_file = Path(args.data_dir or get_settings().data_dir) / "dev-api-key"
        if not key_file.exists():
            raise SystemExit(
                f"no API key: set DEEPLOYD_API_KEY (or run `deeployd dev`, which writes {key_file})"
            )
        key = key_file.read_text().strip()
    return url, key


async def ensure_demo_agent_for(settings: Settings, org_id: str) -> None:
    """Used by `deeployd dev`: the demo agent exists in the default organisation."""
    from deeployd.agents.demo import ensure_demo_agent
    from deeployd.db import Database

    db = Database(settings.require_database_url(), pool_size=1)
    await db.open()
    try:
        await ensure_demo_agent(db, org_id)
    finally:
        await db.close()


# --- chat ------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _ask(prompt: str) -> str:
    """Read a line without blocking the event loop (the stream keeps flowing meanwhile)."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = await asyncio.to_thread(sys.stdin.readline)
    if line == "":
        raise EOFError
    if not sys.stdin.isatty():  # piped answers are not echoed: keep the transcript readable
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    return line.strip()


async def _resolve_agent(client: Any, name_or_id: str) -> dict[str, Any]:
    for agent in await client.agents.list():
        if name_or_id in (agent["id"], agent["name"]):
            return dict(agent)
    raise SystemExit(f"no agent with id or name {name_or_id!r}")


async def _one_turn(client: Any, conversation_id: str, content: str, auto: str | None) -> None:
    out = sys.stdout
    after_tool_line = False  # the next turn's leading paragraph break would only add blank lines
    async for event in client.conversations.send_message_stream(
        conversation_id=conversation_id, content=content
    ):
        if event.type == "token":
            token = event.token.lstrip("\n") if after_tool_line else event.token
            after_tool_line = after_tool_line and not token
            out.write(token)
            out.flush()
        elif event.type == "tool_call":
            out.write(f"\n  ⚙ {event.name}({_short(event.arguments)})\n")
            after_tool_line = True
        elif event.type == "tool_result":
            out.write(f"  ↳ {_short(event.result)}\n")
            after_tool_line = True
        elif event.type == "approval_required":
            out.write(f"\n  ? approval needed: {event.name}({_short(event.arguments)})\n")
            if auto is not None:
                answer = auto
                out.write(f"  approve? [y/N] {answer}\n")
            else:
                try:
                    answer = await _ask("  approve? [y/N] ")
                except EOFError:
                    answer = "n"
            approved = answer.lower() in ("y", "yes")
            comment = None if approved else "rejected in deeployd chat"
            await client.runs.approve(
                event.data.get("runId") or await _run_of(client, conversation_id),
                event.tool_call_id,
                approved,
                comment,
            )
        elif event.type == "done":
            out.write(f"\n\n[{event.usage.total} tokens, ${event.cost:.6f}]\n")
        elif event.type == "error":
            out.write(f"\n\n[error {event.get('code')}: {event.message}]\n")
        out.flush()


async def _run_of(client: Any, conversation_id: str) -> str:
    runs = await client.runs.list(conversation_id=conversation_id, limit=1)
    return str(runs[0]["id"])


async def _chat(args: argparse.Namespace) -> int:
    import deeployd

    url, key = _connection(args)
    async with deeployd.Client(url, key) as client:
        agent = await _resolve_agent(client, args.agent)
        if args.conversation:
            conversation_id = args.conversation
        else:
            conversation_id = (
                await client.conversations.create(agent["id"], title="deeployd chat")
            )["id"]
        print(
            f"chatting with {agent['name']} ({agent['provider']}/{agent['model']}) — "
            f"conversation {conversation_id}; Ctrl-D to quit",
            flush=True,
        )
        auto = "y" if args.yes else ("n" if args.no else None)
        if args.message:
            await _one_turn(client, conversation_id, args.message, auto)
            return 0
        while True:
            try:
                line = await _ask("\nyou> ")
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            if line:
                sys.stdout.write(f"{agent['name']}> ")
                await _one_turn(client, conversation_id, line, auto)


def cmd_chat(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_chat(args))
    except KeyboardInterrupt:
        return 130


# --- tail ------------------------------------------------------------------------------------


def format_event(data: dict[str, Any]) -> str:
    """One Command Center event as one line."""
    kind = data.get("type", "?")
    now = datetime.now().strftime("%H:%M:%S")
    head = f"{now} {kind:<19}"
    if kind.startswith("alert:"):
        alert = data.get("alert") or {}
        return (
            f"{head} rule={alert.get('ruleName')} {alert.get('metric')} "
            f"{alert.get('comparator')} {alert.get('threshold')} (value {alert.get('value')})"
        )
    parts = [f"run={data.get('runId')}", f"agent={data.get('agentId')}"]
    run = data.get("run") or {}
    if kind in ("run:started", "run:status_changed"):
        parts.append(f"status={data.get('status') or run.get('status')}")
    elif kind == "run:progress":
        parts.append(f"tokens={data.get('tokens')} cost={data.get('cost')}")
    elif kind in ("run:tool_started", "run:tool_completed"):
        parts.append(f"tool={data.get('tool')}")
        if kind == "run:tool_completed":
            parts.append(f"ok={data.get('ok')} {data.get('durationMs')}ms")
    elif kind == "run:llm_call":
        tokens = data.get("tokens") or {}
        parts.append(
            f"model={data.get('model')} {data.get('latencyMs')}ms tokens={tokens.get('total')} "
            f"cost={data.get('cost')}"
        )
    elif kind == "run:memory_op":
        parts.append(f"op={data.get('op')}")
    elif kind == "run:completed":
        usage = data.get("usage") or {}
        parts.append(f"tokens={usage.get('total')} cost={data.get('cost')}")
    elif kind == "run:error":
        parts.append(f"error={_short(data.get('error'))}")
    return f"{head} {' '.join(parts)}"


async def _tail(args: argparse.Namespace) -> int:
    import deeployd

    url, key = _connection(args)
    async with deeployd.Client(url, key) as client:
        agent_ids = [a for a in (args.agents or "").split(",") if a]
        types = [t for t in (args.types or "").split(",") if t]
        print(f"following the Command Center at {url} (Ctrl-C to stop)", flush=True)
        async for event in client.command_center.stream(
            agent_ids=agent_ids or None, event_types=types or None
        ):
            line = json.dumps(event.data) if args.json else format_event(event.data)
            print(line, flush=True)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_tail(args))
    except KeyboardInterrupt:
        return 0


def add_agent_commands(sub: Any) -> None:
    """Register `chat` and `tail` on the `deeployd` command's subparsers."""
    chat = sub.add_parser("chat", help="chat with an agent in the terminal (streams, approvals)")
    chat.add_argument("agent", help="agent id or name (e.g. demo)")
    chat.add_argument("-m", "--message", help="send one message, print the answer, exit")
    chat.add_argument("--conversation", help="continue this conversation id")
    chat.add_argument("--yes", action="store_true", help="approve every tool call")
    chat.add_argument("--no", action="store_true", help="reject every tool call")
    chat.add_argument("--url", help=f"API URL (default $DEEPLOYD_URL or {DEFAULT_URL})")
    chat.add_argument("--data-dir", help="where `deeployd dev` keeps dev-api-key")
    chat.set_defaults(func=cmd_chat)

    tail = sub.add_parser("tail", help="follow the Command Center stream live")
    tail.add_argument("--agents", help="comma-separated agent ids")
    tail.add_argument("--types", help="comma-separated event types, e.g. run:started,run:error")
    tail.add_argument("--json", action="store_true", help="print raw JSON events")
    tail.add_argument("--url", help=f"API URL (default $DEEPLOYD_URL or {DEFAULT_URL})")
    tail.add_argument("--data-dir", help="where `deeployd dev` keeps dev-api-key")
    tail.set_defaults(func=cmd_tail)
