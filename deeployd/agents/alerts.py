"""Command Center alert rules: evaluation and state transitions.

A rule compares one metric of the organisation's finished runs (optionally only some agents')
with a threshold:

- `run_cost`, `run_tokens`, `run_duration_ms`: without `windowMs`, the value of the most recent
  finished run; with `windowMs`, the largest value among runs finished within the window.
- `error_rate`: failed / finished runs within the window (default 1 hour); no runs -> no value.
- `runs_failed`: failed runs within the window (default 1 hour).

A rule whose metric has no value does not hold. State lives in `alert_rules.state` (`ok` |
`firing`): the transition ok->firing inserts an alert and publishes `alert:triggered`,
firing->ok resolves it and publishes `alert:resolved`. The rule row is locked while it is
evaluated, so concurrent evaluators (run ends on several workers, the API) agree on each
transition. Evaluation happens when a run finishes (the `finish_run` activity), when a rule is
created or changed, and when alerts are listed — so windowed rules also clear as time passes.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg.rows import dict_row
from sqlmodel.ext.asyncio.session import AsyncSession

from deeployd.agents import contract, store
from deeployd.agents import events as ev
from deeployd.errors import NotFound
from deeployd.ids import new_id
from deeployd.models import utcnow
from deeployd.models.agent import AlertRule
from deeployd.services import Services

log = logging.getLogger(__name__)

DEFAULT_WINDOW_MS = 3_600_000
_PER_RUN_EXPR = {
    "run_cost": "cost",
    "run_tokens": "(prompt_tokens + completion_tokens)",
    "run_duration_ms": "extract(epoch from (completed_at - coalesce(started_at, created_at))) * 1000",
}


def compare(value: float, comparator: str, threshold: float) -> bool:
    if comparator == "gt":
        return value > threshold
    if comparator == "gte":
        return value >= threshold
    if comparator == "lt":
        return value < threshold
    if comparator == "lte":
        return value <= threshold
    return abs(value - threshold) < 1e-9


async def _metric(conn: Any, rule: dict[str, Any]) -> float | None:
    metric = rule["metric"]
    agent_ids = rule["agent_ids"]
    where = ["org_id = %s", "status IN ('completed', 'failed')", "completed_at IS NOT NULL"]
    params: list[Any] = [rule["org_id"]]
    if agent_ids:
        where.append("agent_id = ANY(%s)")
        params.append(list(agent_ids))
    window_ms = rule["window_ms"]
    if metric in _PER_RUN_EXPR:
        expr = _PER_RUN_EXPR[metric]
        if window_ms:
            where.append("completed_at >= now() - %s * interval '1 millisecond'")
            params.append(window_ms)
            sql = f"SELECT max({expr}) FROM runs WHERE {' AND '.join(where)}"
        else:
            sql = (
                f"SELECT {expr} FROM runs WHERE {' AND '.join(where)} "
                "ORDER BY completed_at DESC LIMIT 1"
            )
    else:
        where.append("completed_at >= now() - %s * interval '1 millisecond'")
        params.append(window_ms or DEFAULT_WINDOW_MS)
        if metric == "error_rate":
            sql = (
                "SELECT CASE WHEN count(*) = 0 THEN NULL ELSE "
                "count(*) FILTER (WHERE status = 'failed')::float / count(*) END "
                f"FROM runs WHERE {' AND '.join(where)}"
            )
        else:  # runs_failed
            sql = (
                "SELECT count(*) FILTER (WHERE status = 'failed') "
                f"FROM runs WHERE {' AND '.join(where)}"
            )
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    return float(row[0]) if row is not None and row[0] is not None else None


def alert_payload(alert: dict[str, Any]) -> dict[str, Any]:
    def iso(v: Any) -> Any:
        return v.isoformat() if v is not None else None

    return {
        "id": alert["id"],
        "ruleId": alert["rule_id"],
        "ruleName": alert["rule_name"],
        "metric": alert["metric"],
        "comparator": alert["comparator"],
        "threshold": alert["threshold"],
        "value": alert["value"],
        "status": alert["status"],
        "runId": alert["run_id"],
        "triggeredAt": iso(alert["triggered_at"]),
        "resolvedAt": iso(alert["resolved_at"]),
        "resolvedValue": alert["resolved_value"],
    }


async def evaluate_rule(
    services: Services, org_id: str, rule_id: str, *, run_id: str | None = None
) -> str | None:
    """Evaluate one rule; returns "triggered" / "resolved" on a transition, else None."""
    transition: str | None = None
    published: dict[str, Any] | None = None
    async with services.db.pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT * FROM alert_rules WHERE id = %s AND org_id = %s FOR UPDATE", (rule_id, org_id)
        )
        rule = await cur.fetchone()
        if rule is None:
            return None
        value = await _metric(conn, rule) if rule["enabled"] else None
        holds = value is not None and compare(value, rule["comparator"], rule["threshold"])
        if holds and rule["state"] != "firing":
            alert_id = new_id("alt")
            await cur.execute(
                "INSERT INTO alerts (id, org_id, rule_id, rule_name, metric, comparator, threshold,"
                " value, status, run_id, triggered_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                " 'active', %s, now()) RETURNING *",
                (
                    alert_id,
                    org_id,
                    rule_id,
                    rule["name"],
                    rule["metric"],
                    rule["comparator"],
                    rule["threshold"],
                    value,
                    run_id,
                ),
            )
            published = await cur.fetchone()
            transition = "triggered"
            await cur.execute(
                "UPDATE alert_rules SET state = 'firing', active_alert_id = %s WHERE id = %s",
                (alert_id, rule_id),
            )
        elif not holds and rule["state"] == "firing":
            await cur.execute(
                "UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_value = %s "
                "WHERE id = %s RETURNING *",
                (value, rule["active_alert_id"]),
            )
            published = await cur.fetchone()
            transition = "resolved"
            await cur.execute(
                "UPDATE alert_rules SET state = 'ok', active_alert_id = NULL WHERE id = %s",
                (rule_id,),
            )
        await cur.execute(
            "UPDATE alert_rules SET last_value = %s, last_evaluated_at = now() WHERE id = %s",
            (value, rule_id),
        )
    if transition is not None and published is not None:
        event_type = ev.ALERT_TRIGGERED if transition == "triggered" else ev.ALERT_RESOLVED
        await services.publisher.publish(
            org_id,
            ev.org_stream(org_id),
            event_type,
            {"alert": alert_payload(published), "ruleId": rule_id},
        )
    return transition


async def evaluate_org_rules(
    services: Services, org_id: str, *, run_id: str | None = None
) -> list[tuple[str, str]]:
    """Evaluate every rule of an organisation; returns the transitions [(rule id, what)]."""
    async with services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM alert_rules WHERE org_id = %s AND (enabled OR state = 'firing')",
            (org_id,),
        )
        rule_ids = [row[0] for row in await cur.fetchall()]
    transitions = []
    for rule_id in rule_ids:
        result = await evaluate_rule(services, org_id, rule_id, run_id=run_id)
        if result is not None:
            transitions.append((rule_id, result))
    return transitions


async def orgs_with_windowed_rules(services: Services) -> list[str]:
    """Organisations with a rule whose value changes as time passes (a window)."""
    async with services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT org_id FROM alert_rules WHERE (enabled OR state = 'firing') AND "
            "(window_ms IS NOT NULL OR metric IN ('error_rate', 'runs_failed'))"
        )
        return [row[0] for row in await cur.fetchall()]


_schedules_ensured: set[str] = set()


sweep_schedule_id = contract.sweep_schedule_id


async def ensure_sweep_schedule(client: Any, settings: Any) -> str:
    """Create (once per process, idempotently) the Schedule that re-evaluates windowed rules."""
    from datetime import timedelta

    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
    )

    schedule_id = sweep_schedule_id(settings.task_queue)
    if schedule_id in _schedules_ensured:
        return schedule_id
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    contract.ALERT_SWEEP_WORKFLOW,
                    contract.SweepAlertsInput(),
                    id=f"{schedule_id}-run",
                    task_queue=settings.task_queue,
                    execution_timeout=timedelta(minutes=5),
                ),
                spec=ScheduleSpec(
                    intervals=[
                        ScheduleIntervalSpec(every=timedelta(seconds=settings.alert_sweep_seconds))
                    ]
                ),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        pass
    _schedules_ensured.add(schedule_id)
    return schedule_id


# --- rule lifecycle (what the API does with a rule) -------------------------------------------


async def get_rule(session: AsyncSession, org_id: str, rule_id: str) -> AlertRule:
    row = await store.find_owned(session, AlertRule, org_id, rule_id)
    if row is None:
        raise NotFound("alert rule not found")
    return row


async def _evaluated(
    services: Services, session: AsyncSession, org_id: str, rule_id: str
) -> AlertRule:
    """The rule after an evaluation (which may have moved its state)."""
    await evaluate_rule(services, org_id, rule_id)
    row = await get_rule(session, org_id, rule_id)
    await session.refresh(row)
    return row


async def create_rule(
    services: Services, session: AsyncSession, org_id: str, fields: dict[str, Any]
) -> AlertRule:
    """A new rule, evaluated at once (and whenever a run ends)."""
    row = AlertRule(id=new_id("alr"), org_id=org_id, **fields)
    await store.save_row(session, row)
    if services.temporal is not None:  # windowed rules also clear as time passes
        await ensure_sweep_schedule(services.temporal, services.settings)
    return await _evaluated(services, session, org_id, row.id)


async def update_rule(
    services: Services, session: AsyncSession, org_id: str, rule_id: str, changes: dict[str, Any]
) -> AlertRule:
    row = await get_rule(session, org_id, rule_id)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    await store.save_row(session, row)
    return await _evaluated(services, session, org_id, rule_id)


async def delete_rule(services: Services, session: AsyncSession, org_id: str, rule_id: str) -> None:
    row = await get_rule(session, org_id, rule_id)
    if row.state == "firing":  # resolve its alert first, so nothing stays active forever
        row.enabled = False
        await store.save_row(session, row)
        await evaluate_rule(services, org_id, rule_id)
        await session.refresh(row)
    await store.delete_row(session, row)
