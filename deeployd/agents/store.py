"""SQL for the agents family: the run hot path (activities: runs, messages, conversation
slots) and the rows the API reads and edits (agents, conversations, runs, alert rules, the
Command Center's replay start).

Activities use the psycopg pool directly — one statement per step, no ORM session — because they
run once per model call or tool call of every run; the API's edits go through the ORM session
its request holds. Every statement filters by `org_id`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deeployd import db
from deeployd.agents import contract
from deeployd.ids import new_id
from deeployd.models.agent import Agent, Alert, AlertRule, Conversation, Message, Run

# How much conversation history a model call sees (most recent messages, bounded).
MAX_HISTORY_MESSAGES = 200
# Tool results are stored (and shown to the model) up to this many characters.
MAX_TOOL_RESULT_CHARS = 32_000

_RUN_COLUMNS = (
    "id, org_id, agent_id, agent_name, conversation_id, message_id, status, workflow_id, "
    "prompt_tokens, completion_tokens, cost, model_calls, tool_calls, result, error, error_code, "
    "created_at, started_at, completed_at"
)


async def fetch_one(
    pool: AsyncConnectionPool, sql: str, params: Sequence[Any]
) -> dict[str, Any] | None:
    """The first row of one statement, as a dict (None: no row)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql, params)
        return await cur.fetchone()


# --- rows the API reads and edits (ORM session; every query filters by org) --------------------

Owned = TypeVar("Owned", Agent, Conversation, AlertRule)


async def find_owned(
    session: AsyncSession, model: type[Owned], org_id: str, row_id: str
) -> Owned | None:
    """The organisation's agent, conversation or alert rule with this id (None: no such row)."""
    query = select(model).where(model.id == row_id, model.org_id == org_id)
    return (await session.exec(query)).first()


# One row's insert, update and delete are the same for every table.
save_row = db.save_row
delete_row = db.delete_row


async def agent_for_card(
    pool: AsyncConnectionPool, org_id: str, agent_id: str | None
) -> dict[str, Any] | None:
    """What an A2A agent card shows of the agent (or, without an id, of the organisation's
    default agent: its oldest)."""
    select_agents = "SELECT id, name, description, tools, model, provider FROM agents"
    if agent_id:
        sql = f"{select_agents} WHERE id = %s AND org_id = %s"
        return await fetch_one(pool, sql, (agent_id, org_id))
    sql = f"{select_agents} WHERE org_id = %s ORDER BY created_at, id LIMIT 1"
    return await fetch_one(pool, sql, (org_id,))


async def list_agents(session: AsyncSession, org_id: str) -> list[Agent]:
    query = select(Agent).where(Agent.org_id == org_id).order_by(col(Agent.created_at))
    return list(await session.exec(query))


async def agent_has_conversations(session: AsyncSession, org_id: str, agent_id: str) -> bool:
    query = select(Conversation.id).where(
        Conversation.agent_id == agent_id, Conversation.org_id == org_id
    )
    return (await session.exec(query)).first() is not None


Listed = TypeVar("Listed", Conversation, Alert)


async def _newest_first(
    session: AsyncSession,
    model: type[Listed],
    org_id: str,
    by: Any,
    limit: int,
    **equal: str | None,
) -> list[Listed]:
    """The organisation's rows, newest by `by` first; each given (non-empty) `equal` value must
    match its column."""
    query = select(model).where(model.org_id == org_id)
    for column, value in equal.items():
        if value:
            query = query.where(getattr(model, column) == value)
    return list(await session.exec(query.order_by(col(by).desc()).limit(limit)))


async def list_conversations(
    session: AsyncSession, org_id: str, *, agent_id: str | None, limit: int
) -> list[Conversation]:
    """Most recently updated first."""
    by = Conversation.updated_at
    return await _newest_first(session, Conversation, org_id, by, limit, agent_id=agent_id)


async def conversation_messages(
    session: AsyncSession, org_id: str, conversation_id: str, limit: int = 1000
) -> list[Message]:
    """Oldest first."""
    query = (
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.org_id == org_id)
        .order_by(col(Message.seq))
        .limit(limit)
    )
    return list(await session.exec(query))


async def conversation_run_id(
    session: AsyncSession,
    org_id: str,
    conversation_id: str,
    statuses: Collection[str] | None = None,
) -> str | None:
    """The id of one of the conversation's runs in `statuses` (any status if None), the newest."""
    query = select(Run.id).where(Run.conversation_id == conversation_id, Run.org_id == org_id)
    if statuses is not None:
        query = query.where(col(Run.status).in_(list(statuses)))
    return (await session.exec(query.order_by(col(Run.created_at).desc()).limit(1))).first()


async def delete_conversation(session: AsyncSession, row: Conversation) -> None:
    """The conversation and its messages (its runs stay, for the record)."""
    messages = select(Message).where(
        Message.conversation_id == row.id, Message.org_id == row.org_id
    )
    for message in await session.exec(messages):
        await session.delete(message)
    await delete_row(session, row)


async def list_runs(
    pool: AsyncConnectionPool,
    org_id: str,
    *,
    agent_id: str | None = None,
    conversation_id: str | None = None,
    statuses: Collection[str] | None = None,
    since: datetime | None = None,
    oldest_first: bool = False,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Runs by creation time (newest first unless `oldest_first`); `since` keeps runs created
    at or after it."""
    where = ["org_id = %s"]
    params: list[Any] = [org_id]
    for column, value in (("agent_id", agent_id), ("conversation_id", conversation_id)):
        if value:
            where.append(f"{column} = %s")
            params.append(value)
    if statuses is not None:
        where.append("status = ANY(%s)")
        params.append(list(statuses))
    if since is not None:
        where.append("created_at >= %s")
        params.append(since)
    order = "created_at" if oldest_first else "created_at DESC"
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT %s",
            [*params, limit],
        )
        return await cur.fetchall()


async def list_alert_rules(session: AsyncSession, org_id: str) -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.org_id == org_id).order_by(col(AlertRule.created_at))
    return list(await session.exec(query))


async def list_alerts(
    session: AsyncSession, org_id: str, *, status: str | None, limit: int
) -> list[Alert]:
    """Newest first."""
    return await _newest_first(session, Alert, org_id, Alert.triggered_at, limit, status=status)


async def command_center_replay_start(
    pool: AsyncConnectionPool,
    org_id: str,
    streams: Collection[str],
    types: Collection[str] | None,
    agent_ids: Collection[str] | None,
    agentless_types: Collection[str],
    count: int,
) -> int | None:
    """The event id to replay after so that the last `count` matching events of `streams` come
    first (None: there are none). With `agent_ids`, events count only for those agents, except
    those of `agentless_types` (alerts), which always do: the Command Center stream's own filter,
    in SQL."""
    clauses = ["org_id = %s", "stream = ANY(%s)"]
    params: list[Any] = [org_id, list(streams)]
    if types is not None:
        clauses.append("type = ANY(%s)")
        params.append(list(types))
    if agent_ids:
        clauses.append("(type = ANY(%s) OR data->>'agentId' = ANY(%s))")
        params += [list(agentless_types), list(agent_ids)]
    async with pool.connection() as conn:
        cursor = await conn.execute(
            f"SELECT min(id) FROM (SELECT id FROM events WHERE {' AND '.join(clauses)} "
            "ORDER BY id DESC LIMIT %s) AS recent",
            [*params, count],
        )
        row = await cursor.fetchone()
    return int(row[0]) - 1 if row is not None and row[0] is not None else None


async def get_run(pool: AsyncConnectionPool, org_id: str, run_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = %s AND org_id = %s", (run_id, org_id)
        )
        return await cur.fetchone()


async def get_agent(pool: AsyncConnectionPool, org_id: str, agent_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        pool, "SELECT * FROM agents WHERE id = %s AND org_id = %s", (agent_id, org_id)
    )


async def update_run(
    pool: AsyncConnectionPool, org_id: str, run_id: str, **fields: Any
) -> dict[str, Any] | None:
    """Set columns (values; `now()` for the sentinel "now") and return the updated row."""
    sets: list[str] = []
    params: list[Any] = []
    for column, value in fields.items():
        if value == "now()":
            sets.append(f"{column} = now()")
        elif value == "coalesce_now()":
            sets.append(f"{column} = coalesce({column}, now())")
        else:
            sets.append(f"{column} = %s")
            params.append(Jsonb(value) if isinstance(value, list | dict) else value)
    params += [run_id, org_id]
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"UPDATE runs SET {', '.join(sets)} WHERE id = %s AND org_id = %s "
            f"RETURNING {_RUN_COLUMNS}",
            params,
        )
        return await cur.fetchone()


async def append_tool_call(
    pool: AsyncConnectionPool, org_id: str, run_id: str, entry: dict[str, Any]
) -> None:
    """Record (or replace, by toolCallId) a tool call on the run row."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE runs SET tool_calls = ("
            "  SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements(tool_calls) e"
            "  WHERE e->>'toolCallId' IS DISTINCT FROM %s"
            ") || %s::jsonb WHERE id = %s AND org_id = %s",
            (entry["toolCallId"], Jsonb([entry]), run_id, org_id),
        )


async def insert_message(
    pool: AsyncConnectionPool,
    *,
    org_id: str,
    conversation_id: str,
    run_id: str | None,
    role: str,
    content: str | None,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    dedup_key: str | None = None,
) -> None:
    """Insert a message once: a retried activity finds its `dedup_key` taken and does nothing."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO messages (id, org_id, conversation_id, run_id, role, content, tool_calls,"
            " tool_call_id, dedup_key, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())"
            " ON CONFLICT (dedup_key) DO NOTHING",
            (
                new_id("msg"),
                org_id,
                conversation_id,
                run_id,
                role,
                content,
                Jsonb(tool_calls or []),
                tool_call_id,
                dedup_key,
            ),
        )


async def load_history(
    pool: AsyncConnectionPool, org_id: str, conversation_id: str, run_id: str
) -> list[dict[str, Any]]:
    """The messages a model call of `run_id` sees, oldest first.

    Completed runs contribute their whole exchange; failed or cancelled runs only their user
    message (a half-finished tool exchange would be malformed for the providers); queued runs
    nothing yet. Ordered by run, then insertion, so an enqueued message comes after the answer
    to the message before it.
    """
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT m.role, m.content, m.tool_calls, m.tool_call_id FROM messages m "
            "JOIN runs r ON r.id = m.run_id "
            "WHERE m.conversation_id = %s AND m.org_id = %s AND ("
            "  m.run_id = %s OR r.status = 'completed'"
            "  OR (m.role = 'user' AND r.status IN ('failed', 'cancelled'))) "
            "ORDER BY r.created_at DESC, m.seq DESC LIMIT %s",
            (conversation_id, org_id, run_id, MAX_HISTORY_MESSAGES),
        )
        rows = list(reversed(await cur.fetchall()))
    # A bounded window must not start in the middle of a tool exchange.
    while rows and rows[0]["role"] != "user":
        rows.pop(0)
    return rows


def clip_result(result: Any) -> str:
    """A tool result as the text the model reads (JSON), bounded."""
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    if len(text) > MAX_TOOL_RESULT_CHARS:
        text = text[:MAX_TOOL_RESULT_CHARS] + "…(truncated)"
    return text


async def claim_conversation(
    pool: AsyncConnectionPool, org_id: str, conversation_id: str, run_id: str
) -> tuple[bool, str]:
    """Try to make `run_id` the conversation's active run. Returns (claimed, run status).

    The conversation row lock serialises claims and hand-overs, so exactly one run of a
    conversation runs at a time and queued runs start in creation order.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT active_run_id FROM conversations WHERE id = %s AND org_id = %s FOR UPDATE",
            (conversation_id, org_id),
        )
        row = await cur.fetchone()
        if row is None:
            return False, "failed"
        active = row[0]
        cur = await conn.execute(
            "SELECT status FROM runs WHERE id = %s AND org_id = %s", (run_id, org_id)
        )
        status_row = await cur.fetchone()
        status = status_row[0] if status_row else "failed"
        if status in contract.TERMINAL:
            return False, status
        if active == run_id:
            return True, status
        if active is not None:
            cur = await conn.execute("SELECT status FROM runs WHERE id = %s", (active,))
            holder = await cur.fetchone()
            if holder is not None and holder[0] not in contract.TERMINAL:
                return False, status
        # The conversation is free (or its holder ended without handing over): the oldest
        # queued run goes first.
        cur = await conn.execute(
            "SELECT id FROM runs WHERE conversation_id = %s AND status = 'queued' "
            "ORDER BY created_at LIMIT 1",
            (conversation_id,),
        )
        oldest = await cur.fetchone()
        if oldest is not None and oldest[0] != run_id:
            return False, status
        await conn.execute(
            "UPDATE conversations SET active_run_id = %s, updated_at = now() WHERE id = %s",
            (run_id, conversation_id),
        )
        return True, status


async def release_conversation(
    pool: AsyncConnectionPool, org_id: str, conversation_id: str, run_id: str
) -> str | None:
    """Hand the conversation to its oldest queued run (returned), or free it."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT active_run_id FROM conversations WHERE id = %s AND org_id = %s FOR UPDATE",
            (conversation_id, org_id),
        )
        row = await cur.fetchone()
        if row is None or row[0] not in (None, run_id):
            return None
        cur = await conn.execute(
            "SELECT id FROM runs WHERE conversation_id = %s AND status = 'queued' AND id <> %s "
            "ORDER BY created_at LIMIT 1",
            (conversation_id, run_id),
        )
        nxt = await cur.fetchone()
        next_id = nxt[0] if nxt else None
        await conn.execute(
            "UPDATE conversations SET active_run_id = %s, updated_at = now() WHERE id = %s",
            (next_id, conversation_id),
        )
        return next_id


async def count_published_tokens(
    pool: AsyncConnectionPool, org_id: str, run_id: str, turn: int
) -> int:
    """How many tokens of this model turn are already in the log (a retried call skips them)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM events WHERE stream = %s AND org_id = %s AND type = 'token' "
            "AND (data->>'turn')::int = %s",
            (contract.run_stream(run_id), org_id, turn),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def latest_turn_text_before(
    pool: AsyncConnectionPool, org_id: str, run_id: str, turn: int
) -> str | None:
    """The text of the run's latest model turn before `turn` that had any (None: none had)."""
    keys = [f"{run_id}:turn:{k}" for k in range(turn)]
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT content FROM messages WHERE dedup_key = ANY(%s) AND org_id = %s "
            "AND role = 'assistant' AND content <> '' "
            "ORDER BY array_position(%s, dedup_key) DESC LIMIT 1",
            (keys, org_id, keys),
        )
        row = await cur.fetchone()
        return row[0] if row else None


async def turn_text(pool: AsyncConnectionPool, org_id: str, run_id: str, turn: int) -> str | None:
    """The text of the assistant message a model call stored (see call_model)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT content FROM messages WHERE dedup_key = %s AND org_id = %s",
            (f"{run_id}:turn:{turn}", org_id),
        )
        row = await cur.fetchone()
        return row[0] if row else None


async def insert_run_with_message(
    conn: Any,
    *,
    org_id: str,
    run_id: str,
    message_id: str,
    agent_id: str,
    agent_name: str,
    conversation_id: str,
    content: str,
    workflow_id: str,
    claimed: bool,
) -> None:
    """A new run and the user message it answers, in the caller's transaction (the one home of
    run creation: chat messages and A2A tasks both start runs here).

    `claimed`: the run holds its conversation already and starts `running`; else `queued`.
    """
    await conn.execute(
        "INSERT INTO runs (id, org_id, agent_id, agent_name, conversation_id, message_id, "
        "status, workflow_id, tool_calls, created_at, started_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp(), "
        "CASE WHEN %s THEN clock_timestamp() END)",
        (
            run_id,
            org_id,
            agent_id,
            agent_name,
            conversation_id,
            message_id,
            "running" if claimed else "queued",
            workflow_id,
            Jsonb([]),
            claimed,
        ),
    )
    await conn.execute(
        "INSERT INTO messages (id, org_id, conversation_id, run_id, role, content, tool_calls, "
        "created_at) VALUES (%s, %s, %s, %s, 'user', %s, %s, now())",
        (message_id, org_id, conversation_id, run_id, content, Jsonb([])),
    )
