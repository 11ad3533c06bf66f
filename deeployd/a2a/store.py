"""Rows of `a2a_tasks` / `a2a_push_configs` (every query scoped by org) and their A2A shapes.

Messages and artifacts are kept as A2A 1.0 JSON (the protobuf JSON mapping, camelCase), so a
row turns into an `a2a.types.Task` with one `ParseDict`.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from a2a.types.a2a_pb2 import Artifact, Message, Task, TaskPushNotificationConfig, TaskState
from google.protobuf.json_format import MessageToDict, ParseDict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from deeployd.agents.store import fetch_one
from deeployd.idempotency import IdempotencyKey, remember

# History is bounded: a long-lived task keeps its most recent messages.
MAX_HISTORY = 200
MAX_ARTIFACTS = 100
_COLUMNS = (
    "id, org_id, agent_id, context_id, state, workflow_id, run_id, conversation_id, "
    "status_message, history, artifacts, metadata, last_input, error, created_at, updated_at"
)


async def delete_task(pool: AsyncConnectionPool, org_id: str, task_id: str) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM a2a_tasks WHERE id = %s AND org_id = %s", (task_id, org_id))


# --- states ----------------------------------------------------------------------------------


def proto_state(state: str) -> int:
    """'input-required' -> TaskState.TASK_STATE_INPUT_REQUIRED."""
    return int(TaskState.Value("TASK_STATE_" + state.upper().replace("-", "_")))


def proto_state_name(state: str) -> str:
    return "TASK_STATE_" + state.upper().replace("-", "_")


def state_from_proto(value: int) -> str:
    return TaskState.Name(value).removeprefix("TASK_STATE_").lower().replace("_", "-")  # type: ignore[arg-type]


# --- messages ----------------------------------------------------------------------------------


def new_message_id() -> str:
    return str(uuid.uuid4())


def text_message(
    role: str, text: str, *, task_id: str, context_id: str, message_id: str | None = None
) -> dict[str, Any]:
    """An A2A message (JSON) with one text part; role 'user' or 'agent'."""
    return {
        "messageId": message_id or new_message_id(),
        "contextId": context_id,
        "taskId": task_id,
        "role": "ROLE_USER" if role == "user" else "ROLE_AGENT",
        "parts": [{"text": text}],
    }


def message_json(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = MessageToDict(message)
    return result


def message_text(message: dict[str, Any]) -> str:
    """The text a model reads from a message: text parts as is, data parts as JSON."""
    pieces: list[str] = []
    for part in message.get("parts", []):
        if "text" in part:
            pieces.append(part["text"])
        elif "data" in part:
            pieces.append(json.dumps(part["data"]))
        elif "url" in part:
            pieces.append(f"[file {part.get('filename') or ''} at {part['url']}]")
        elif "raw" in part:
            pieces.append(f"[file {part.get('filename') or ''}, {len(part['raw'])} base64 chars]")
    return "\n".join(p for p in pieces if p)


def message_data(message: dict[str, Any]) -> dict[str, Any]:
    """The first data part of a message that is a JSON object ({} when there is none)."""
    for part in message.get("parts", []):
        if isinstance(part.get("data"), dict):
            return dict(part["data"])
    return {}


# --- tasks -----------------------------------------------------------------------------------


def iso(value: datetime | None) -> str:
    return (value or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def row_to_task(
    row: dict[str, Any], *, history_length: int | None = None, include_artifacts: bool = True
) -> Task:
    status: dict[str, Any] = {
        "state": proto_state_name(row["state"]),
        "timestamp": iso(row["updated_at"]),
    }
    if row["status_message"]:
        status["message"] = row["status_message"]
    history = list(row["history"] or [])
    if history_length is not None:
        history = history[-history_length:] if history_length > 0 else []
    body: dict[str, Any] = {
        "id": row["id"],
        "contextId": row["context_id"],
        "status": status,
        "history": history,
        "metadata": {**(row["metadata"] or {}), "agentId": row["agent_id"]},
    }
    if include_artifacts:
        body["artifacts"] = row["artifacts"] or []
    return ParseDict(body, Task(), ignore_unknown_fields=True)


def task_json(row: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = MessageToDict(row_to_task(row, **kwargs))
    return result


async def insert_task(
    pool: AsyncConnectionPool,
    *,
    task_id: str,
    org_id: str,
    agent_id: str,
    context_id: str,
    workflow_id: str,
    message: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """With `idempotency`, the key is committed with the task (KeyTaken if already taken)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"INSERT INTO a2a_tasks (id, org_id, agent_id, context_id, state, workflow_id, "
            "history, artifacts, metadata, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, 'submitted', %s, %s, '[]'::jsonb, %s, clock_timestamp(), "
            f"clock_timestamp()) RETURNING {_COLUMNS}",
            (
                task_id,
                org_id,
                agent_id,
                context_id,
                workflow_id,
                Jsonb([message]),
                Jsonb(metadata or {}),
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        if idempotency is not None:
            await remember(conn, idempotency, 201, {"taskId": task_id})
        return row


async def get_task(pool: AsyncConnectionPool, org_id: str, task_id: str) -> dict[str, Any] | None:
    sql = f"SELECT {_COLUMNS} FROM a2a_tasks WHERE id = %s AND org_id = %s"
    return await fetch_one(pool, sql, (task_id, org_id))


async def task_for_run(
    pool: AsyncConnectionPool, org_id: str, run_id: str
) -> dict[str, Any] | None:
    sql = f"SELECT {_COLUMNS} FROM a2a_tasks WHERE run_id = %s AND org_id = %s"
    return await fetch_one(pool, sql, (run_id, org_id))


def encode_page_token(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    """Raises ValueError for a token this server did not write."""
    padded = token + "=" * (-len(token) % 4)
    created, task_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    return datetime.fromisoformat(created), str(task_id)


async def list_tasks(
    pool: AsyncConnectionPool,
    org_id: str,
    *,
    agent_id: str | None = None,
    context_id: str | None = None,
    state: str | None = None,
    updated_after: datetime | None = None,
    page_size: int = 50,
    page_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Newest first; returns (rows, next page token, total matching)."""
    clauses = ["org_id = %s"]
    params: list[Any] = [org_id]
    if agent_id:
        clauses.append("agent_id = %s")
        params.append(agent_id)
    if context_id:
        clauses.append("context_id = %s")
        params.append(context_id)
    if state:
        clauses.append("state = %s")
        params.append(state)
    if updated_after is not None:
        clauses.append("updated_at > %s")
        params.append(updated_after)
    where = " AND ".join(clauses)
    page_where = where
    page_params = list(params)
    if page_token:
        created, last_id = decode_page_token(page_token)
        page_where += " AND (created_at, id) < (%s, %s)"
        page_params += [created, last_id]
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {_COLUMNS} FROM a2a_tasks WHERE {page_where} "
            "ORDER BY created_at DESC, id DESC LIMIT %s",
            [*page_params, page_size + 1],
        )
        rows = await cur.fetchall()
        count_cur = await conn.execute(f"SELECT count(*) FROM a2a_tasks WHERE {where}", params)
        total_row = await count_cur.fetchone()
    next_token = encode_page_token(rows[page_size - 1]) if len(rows) > page_size else None
    return rows[:page_size], next_token, int(total_row[0]) if total_row else 0


async def update_task(
    pool: AsyncConnectionPool,
    org_id: str,
    task_id: str,
    *,
    state: str | None = None,
    status_message: dict[str, Any] | None = None,
    clear_status_message: bool = False,
    run_id: str | None = None,
    conversation_id: str | None = None,
    append_history: list[dict[str, Any]] | None = None,
    artifact: dict[str, Any] | None = None,
    last_input: str | None = None,
    error: str | None = None,
    only_if_not_terminal: bool = False,
) -> dict[str, Any] | None:
    """One UPDATE; `artifact` replaces the stored artifact with the same id (or is appended)."""
    sets = ["updated_at = clock_timestamp()"]
    params: list[Any] = []
    plain = {
        "state": state,
        "run_id": run_id,
        "conversation_id": conversation_id,
        "last_input": last_input,
        "error": error,
    }
    for column, value in plain.items():
        if value is not None:
            sets.append(f"{column} = %s")
            params.append(value)
    if status_message is not None:
        sets.append("status_message = %s")
        params.append(Jsonb(status_message))
    elif clear_status_message:
        sets.append("status_message = NULL")
    if append_history:
        # Drop copies of these messages (an activity retry), append, keep the newest MAX_HISTORY.
        sets.append(
            "history = (SELECT coalesce(jsonb_agg(m ORDER BY n), '[]'::jsonb) FROM ("
            " SELECT m, n FROM jsonb_array_elements("
            "  (SELECT coalesce(jsonb_agg(h ORDER BY i), '[]'::jsonb)"
            "   FROM jsonb_array_elements(history) WITH ORDINALITY AS x(h, i)"
            "   WHERE NOT (coalesce(h->>'messageId', '') = ANY(%s))) || %s"
            " ) WITH ORDINALITY AS t(m, n) ORDER BY n DESC LIMIT %s) AS newest)"
        )
        params += [
            [m.get("messageId") or "" for m in append_history],
            Jsonb(append_history),
            MAX_HISTORY,
        ]
    if artifact is not None:
        sets.append(
            "artifacts = (SELECT coalesce(jsonb_agg(a), '[]'::jsonb) FROM "
            "jsonb_array_elements(artifacts) a WHERE a->>'artifactId' <> %s) || %s"
        )
        params += [artifact["artifactId"], Jsonb([artifact])]
    condition = "id = %s AND org_id = %s"
    if only_if_not_terminal:
        condition += " AND state NOT IN ('completed', 'failed', 'canceled', 'rejected')"
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"UPDATE a2a_tasks SET {', '.join(sets)} WHERE {condition} RETURNING {_COLUMNS}",
            [*params, task_id, org_id],
        )
        return await cur.fetchone()


# --- push-notification configs ----------------------------------------------------------------


def push_config_proto(row: dict[str, Any]) -> TaskPushNotificationConfig:
    body: dict[str, Any] = {"id": row["id"], "taskId": row["task_id"], "url": row["url"]}
    if row["token"]:
        body["token"] = row["token"]
    if row["authentication"]:
        body["authentication"] = row["authentication"]
    return ParseDict(body, TaskPushNotificationConfig(), ignore_unknown_fields=True)


async def set_push_config(
    pool: AsyncConnectionPool, org_id: str, config: TaskPushNotificationConfig
) -> dict[str, Any]:
    config_id = config.id or str(uuid.uuid4())
    auth = MessageToDict(config.authentication) if config.HasField("authentication") else None
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "INSERT INTO a2a_push_configs (task_id, id, org_id, url, token, authentication) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (task_id, id) DO UPDATE SET "
            "url = excluded.url, token = excluded.token, authentication = excluded.authentication "
            "WHERE a2a_push_configs.org_id = excluded.org_id "
            "RETURNING task_id, id, org_id, url, token, authentication",
            (
                config.task_id,
                config_id,
                org_id,
                config.url,
                config.token or None,
                Jsonb(auth) if auth else None,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        return row


async def push_configs(
    pool: AsyncConnectionPool, org_id: str, task_id: str
) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT task_id, id, org_id, url, token, authentication FROM a2a_push_configs "
            "WHERE task_id = %s AND org_id = %s ORDER BY created_at",
            (task_id, org_id),
        )
        return await cur.fetchall()


async def delete_push_config(
    pool: AsyncConnectionPool, org_id: str, task_id: str, config_id: str
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM a2a_push_configs WHERE task_id = %s AND id = %s AND org_id = %s",
            (task_id, config_id, org_id),
        )


def artifact_proto(artifact: dict[str, Any]) -> Artifact:
    return ParseDict(artifact, Artifact(), ignore_unknown_fields=True)
