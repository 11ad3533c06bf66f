"""`memory_write` / `memory_search`: a conversation's long-term notes, in `agent_memories`.

Scope: every statement filters by org_id AND conversation_id, so one conversation (or org)
never sees another's memories. Search is case-insensitive term matching: a memory matches when
it contains any query word (ILIKE) or all of them after English stemming (Postgres full text,
`to_tsvector`/`plainto_tsquery`); results are ranked by how many query words they contain, then
by full-text rank, then newest first. An empty query lists the newest memories. Both tools
publish a `run:memory_op` Command Center event.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deeployd.agents.tools.base import BaseTool, ToolContext, ToolError, register_tool
from deeployd.ids import new_id

MAX_MEMORY_CHARS = 4000
MAX_MEMORIES_PER_CONVERSATION = 1000
MAX_QUERY_TERMS = 16
_TERM = re.compile(r"\w+", re.UNICODE)

_INSERT = """
INSERT INTO agent_memories (id, org_id, conversation_id, content, created_at)
SELECT %(id)s::text, %(org)s::text, %(conv)s::text, %(content)s::text, now()
WHERE (SELECT count(*) FROM agent_memories WHERE org_id = %(org)s AND conversation_id = %(conv)s)
      < %(cap)s
RETURNING created_at
"""

_SEARCH = """
SELECT id, content, created_at, hits FROM (
  SELECT m.id, m.content, m.created_at,
         (SELECT count(*) FROM unnest(%(patterns)s::text[]) AS p(pattern)
           WHERE m.content ILIKE p.pattern) AS hits,
         to_tsvector('english', m.content) @@ plainto_tsquery('english', %(q)s) AS fts,
         ts_rank(to_tsvector('english', m.content), plainto_tsquery('english', %(q)s)) AS rank
  FROM agent_memories m
  WHERE m.org_id = %(org)s AND m.conversation_id = %(conv)s
) s
WHERE hits > 0 OR fts
ORDER BY hits DESC, rank DESC, created_at DESC
LIMIT %(limit)s
"""

_RECENT = """
SELECT id, content, created_at, 0 FROM agent_memories
WHERE org_id = %(org)s AND conversation_id = %(conv)s
ORDER BY created_at DESC LIMIT %(limit)s
"""


class MemoryWriteArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(
        min_length=1,
        max_length=MAX_MEMORY_CHARS,
        description="The fact or note to remember for the rest of this conversation.",
    )


class MemorySearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(
        default="",
        max_length=500,
        description="Words to look for (case-insensitive). Empty: the most recent memories.",
    )
    limit: int = Field(default=5, ge=1, le=20, description="At most this many memories.")


class MemoryWrite(BaseTool):
    name = "memory_write"
    description = "Remember a fact or note for the rest of this conversation."
    Args = MemoryWriteArgs

    async def execute(self, params: MemoryWriteArgs, ctx: ToolContext) -> dict[str, Any]:
        memory_id = new_id("mem")
        async with ctx.services.db.pool.connection() as conn:
            cursor = await conn.execute(
                _INSERT,
                {
                    "id": memory_id,
                    "org": ctx.org_id,
                    "conv": ctx.conversation_id,
                    "content": params.content,
                    "cap": MAX_MEMORIES_PER_CONVERSATION,
                },
            )
            row = await cursor.fetchone()
        if row is None:
            raise ToolError(
                f"this conversation already has {MAX_MEMORIES_PER_CONVERSATION} memories"
            )
        await ctx.publish(
            "run:memory_op",
            {
                "op": "write",
                "conversationId": ctx.conversation_id,
                "memoryId": memory_id,
                "chars": len(params.content),
            },
        )
        return {"id": memory_id, "stored": True, "createdAt": row[0].isoformat()}


class MemorySearch(BaseTool):
    name = "memory_search"
    description = "Search what was remembered earlier in this conversation (memory_write)."
    Args = MemorySearchArgs

    async def execute(self, params: MemorySearchArgs, ctx: ToolContext) -> dict[str, Any]:
        memories = await search_memories(
            ctx.services, ctx.org_id, ctx.conversation_id, params.query, params.limit
        )
        await ctx.publish(
            "run:memory_op",
            {
                "op": "search",
                "conversationId": ctx.conversation_id,
                "query": params.query,
                "results": len(memories),
            },
        )
        return {"query": params.query, "memories": memories}


async def search_memories(
    services: Any, org_id: str, conversation_id: str, query: str, limit: int = 5
) -> list[dict[str, Any]]:
    """Ranked memories of one conversation (see the module docstring)."""
    terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(query)))[:MAX_QUERY_TERMS]
    params: dict[str, Any] = {"org": org_id, "conv": conversation_id, "limit": limit}
    if terms:
        params["q"] = " ".join(terms)
        params["patterns"] = ["%" + _escape_like(t) + "%" for t in terms]
    async with services.db.pool.connection() as conn:
        cursor = await conn.execute(_SEARCH if terms else _RECENT, params)
        rows = await cursor.fetchall()
    return [
        {"id": r[0], "content": r[1], "createdAt": r[2].isoformat(), "matches": int(r[3])}
        for r in rows
    ]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


register_tool(MemoryWrite())
register_tool(MemorySearch())
