"""A conversation with the demo agent from Python: stream the answer, decide its tool call.

    . .venv/bin/activate
    python3 examples/demo_conversation.py            # approves the demo's http_request call
    python3 examples/demo_conversation.py --reject   # or rejects it

The API is DEEPLOYD_URL (default http://localhost:8000); the key is DEEPLOYD_API_KEY, else the
one `deeployd dev` keeps in .deeployd/dev-api-key. Exits 0 once the run is done.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import deeployd


def api_key() -> str:
    key = os.environ.get("DEEPLOYD_API_KEY")
    if key:
        return key
    key_file = Path(os.environ.get("DEEPLOYD_DATA_DIR", ".deeployd")) / "dev-api-key"
    if not key_file.exists():
        sys.exit(f"no API key: set DEEPLOYD_API_KEY, or start `make dev` (it writes {key_file})")
    return key_file.read_text().strip()


async def main(question: str, approve: bool) -> int:
    url = os.environ.get("DEEPLOYD_URL", "http://localhost:8000")
    async with deeployd.Client(url, api_key()) as client:
        agent = next((a for a in await client.agents.list() if a["name"] == "demo"), None)
        if agent is None:
            sys.exit("no agent named demo: `deeployd dev` creates it")
        conversation = await client.conversations.create(agent["id"], title="Python example")
        async for event in client.conversations.send_message_stream(
            conversation_id=conversation["id"], content=question
        ):
            if event.type == "token":
                print(event.token, end="", flush=True)
            elif event.type == "tool_call":
                print(f"\n[tool call] {event.name} {event.arguments}", end="", flush=True)
            elif event.type == "approval_required":
                # The run waits (status input-required) until someone decides.
                decision = "approving" if approve else "rejecting"
                print(f"\n[approval required] {event.name}: {decision}", end="", flush=True)
                await client.runs.approve(
                    event.run_id,
                    event.tool_call_id,
                    approved=approve,
                    comment=None if approve else "rejected by the example",
                )
            elif event.type == "tool_result":
                print(f"\n[tool result] {str(event.result)[:200]}", end="", flush=True)
            elif event.type == "done":
                print(f"\n\ndone: {event.usage.total} tokens, ${event.cost:.6f}")
                return 0
            elif event.type == "error":
                print(f"\n\nerror {event.code}: {event.message}", file=sys.stderr)
                return 1
    return 1  # the stream ended without done or error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question", nargs="?", default="What is (2 + 3) * 7?")
    parser.add_argument("--reject", action="store_true", help="reject the tool call")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.question, approve=not args.reject)))
