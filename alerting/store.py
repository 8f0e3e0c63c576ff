"""Alarm rows and the append-only journal in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerting.lifecycle import AlarmState, on_acknowledge, on_condition
from common.conditions import ConditionEvent


@dataclass(frozen=True, slots=True)
class Change:
    """An alarm state change to announce (log, `alarms` topic)."""

    alarm_id: str
    from_state: str | None
    to_state: str
    event: ConditionEvent | None
    username: str


def alarm_id(event: ConditionEvent) -> str:
    """One alarm per (source, condition)."""
    return f"{event.sensors[0]}:{event.condition}"


def apply_event(conn: psycopg.Connection[Any], event: ConditionEvent) -> Change | None:
    """Apply a condition event once (by event id); None if already applied or stale."""
    aid = alarm_id(event)
    with conn.transaction():
        row = conn.execute(
            "SELECT state, occurrence_id::text AS occurrence, activated_at FROM alarms"
            " WHERE alarm_id = %s FOR UPDATE",
            (aid,),
        ).fetchone()
        current: AlarmState | None = row[0] if row else None
        stale = row is not None and _stale(event, row[1], row[2])
        new_state: AlarmState | None
        if stale:
            new_state = current
        elif current is None and event.state == "cleared":
            new_state = None  # the clear of an activation we never saw
        else:
            new_state = on_condition(current, event.state == "active")
        inserted = conn.execute(
            "INSERT INTO alarm_journal (time, alarm_id, event_id, action, from_state, to_state,"
            " username, details) VALUES (%s, %s, %s, %s, %s, %s, 'system', %s)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING id",
            (
                event.ts,
                aid,
                event.event_id,
                "stale_" + event.state if stale else event.state,
                current,
                new_state or "NORMAL",
                Jsonb(
                    {
                        "explanation": event.explanation,
                        "value": event.value,
                        "occurrence_id": event.occurrence_id,
                    }
                ),
            ),
        ).fetchone()
        if inserted is None or stale or new_state is None:
            return None  # a replay, an old event arriving late, or a clear of nothing
        _upsert(conn, aid, event, new_state)
    return Change(aid, current, new_state, event, "system")


def _stale(event: ConditionEvent, occurrence: str, activated_at: datetime) -> bool:
    """An event about an older occurrence than the one the alarm shows."""
    if event.occurrence_id == occurrence:
        return False
    return event.activated_at < activated_at


def _upsert(conn: psycopg.Connection[Any], aid: str, e: ConditionEvent, state: str) -> None:
    active = e.state == "active"
    conn.execute(
        "INSERT INTO alarms (alarm_id, site_id, unit_id, sensor_id, condition, state, active,"
        " severity, value, threshold, explanation, occurrence_id, activated_at, cleared_at,"
        " updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        " ON CONFLICT (alarm_id) DO UPDATE SET state = EXCLUDED.state,"
        " active = EXCLUDED.active, severity = EXCLUDED.severity, value = EXCLUDED.value,"
        " threshold = EXCLUDED.threshold, explanation = EXCLUDED.explanation,"
        " occurrence_id = EXCLUDED.occurrence_id, activated_at = EXCLUDED.activated_at,"
        " cleared_at = EXCLUDED.cleared_at, updated_at = EXCLUDED.updated_at",
        (
            aid,
            e.site,
            e.unit,
            e.sensors[0],
            e.condition,
            state,
            active,
            e.severity,
            e.value,
            e.threshold,
            e.explanation,
            e.occurrence_id,
            e.activated_at,
            None if active else e.ts,
            e.ts,
        ),
    )


def acknowledge(
    conn: psycopg.Connection[Any], aid: str, username: str, comment: str
) -> Change | None:
    """Operator acknowledgement; None if the alarm does not exist, raises nothing."""
    with conn.transaction():
        row = conn.execute(
            "SELECT state FROM alarms WHERE alarm_id = %s FOR UPDATE", (aid,)
        ).fetchone()
        if row is None:
            return None
        new_state = on_acknowledge(row[0])
        if new_state is None:
            return Change(aid, row[0], row[0], None, username)
        conn.execute(
            "UPDATE alarms SET state = %s, updated_at = now() WHERE alarm_id = %s",
            (new_state, aid),
        )
        conn.execute(
            "INSERT INTO alarm_journal (alarm_id, action, from_state, to_state, username, details)"
            " VALUES (%s, 'acknowledge', %s, %s, %s, %s)",
            (aid, row[0], new_state, username, Jsonb({"comment": comment})),
        )
    return Change(aid, row[0], new_state, None, username)


def list_alarms(conn: psycopg.Connection[Any], annunciated_only: bool) -> list[dict[str, Any]]:
    """Alarms, most severe and newest first."""
    where = "WHERE state <> 'NORMAL'" if annunciated_only else ""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT alarm_id, site_id, unit_id, sensor_id, condition, state, active, severity,"
            " value, threshold, explanation, occurrence_id::text, activated_at, cleared_at,"
            " updated_at FROM alarms " + where + " ORDER BY CASE severity WHEN 'critical' THEN 0"
            " WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, activated_at DESC"
        )
        return list(cur.fetchall())


def journal(conn: psycopg.Connection[Any], aid: str) -> list[dict[str, Any]]:
    """The journal of one alarm, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT time, action, from_state, to_state, username, details, event_id::text"
            " FROM alarm_journal WHERE alarm_id = %s ORDER BY time, id",
            (aid,),
        )
        return list(cur.fetchall())
