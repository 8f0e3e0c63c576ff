"""Alarm rows and the append-only journal in PostgreSQL: applying condition events.

One transaction per event: journal row (idempotent by event id), alarm row, noise
handling, incident correlation and the change-log entry commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerting import changes, noise
from alerting.lifecycle import BaseState, displayed, on_condition
from alerting.plant import PlantView
from alerting.priority import is_sensor_fault, priority
from common.conditions import ConditionEvent

if TYPE_CHECKING:
    from alerting.incidents import RuleSet

ALARM_COLUMNS = (
    "alarm_id, site_id, unit_id, sensor_id, area, condition, category, priority, state,"
    " base_state, active, severity, value, threshold, explanation, occurrence_id::text,"
    " activated_at, cleared_at, updated_at, acked_at, acked_by, shelved_until, shelve_reason,"
    " shelved_by, out_of_service, suppressed, chattering, chatter_count, activations, flood_id"
)


@dataclass(frozen=True, slots=True)
class Change:
    """An alarm state change to announce (log, `alarms` topic)."""

    alarm_id: str
    from_state: str | None
    to_state: str
    event: ConditionEvent | None
    username: str


@dataclass(frozen=True, slots=True)
class NoiseLimits:
    """Chatter and flood thresholds (docs/domain.md 1.5, 1.6)."""

    chatter_activations: int = 3
    chatter_window_s: float = 60.0
    chatter_shelve_s: float = 600.0
    flood_start: int = 10  # more than this many new alarms in the window starts a flood
    flood_end: int = 5  # fewer than this many ends it
    flood_window_s: float = 600.0


@dataclass
class Context:
    """What applying an event needs besides the event: the plant, rules and limits."""

    plant: PlantView = field(default_factory=lambda: PlantView(None))
    rules: RuleSet | None = None
    limits: NoiseLimits = field(default_factory=NoiseLimits)


def alarm_id(event: ConditionEvent) -> str:
    """One alarm per (source, condition)."""
    return f"{event.sensors[0]}:{event.condition}"


def get_alarm(conn: psycopg.Connection[Any], aid: str, lock: bool = False) -> dict[str, Any] | None:
    """One alarm row as a dict."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE alarm_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (aid,),
        )
        return cur.fetchone()


def journal_entry(
    conn: psycopg.Connection[Any],
    time: datetime,
    aid: str,
    action: str,
    from_state: str | None,
    to_state: str,
    username: str,
    details: dict[str, Any],
    occurrence: str | None = None,
    event_id: str | None = None,
) -> bool:
    """Append to the journal; False when the event id was already journalled (a replay)."""
    row = conn.execute(
        "INSERT INTO alarm_journal (time, alarm_id, event_id, occurrence_id, action,"
        " from_state, to_state, username, details) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING id",
        (
            time,
            aid,
            event_id,
            occurrence,
            action,
            from_state,
            to_state,
            username,
            Jsonb(changes.jsonable(details)),
        ),
    ).fetchone()
    return row is not None


def save(conn: psycopg.Connection[Any], row: dict[str, Any]) -> None:
    """Write an alarm row (insert or update every column) and log the change."""
    row["state"] = displayed(
        row["base_state"], row["out_of_service"], row["suppressed"], _shelved(row)
    )
    cols = [c.strip().removesuffix("::text") for c in ALARM_COLUMNS.split(",")]
    with conn.pipeline():  # the row and its change-log entry: one round trip, not two
        conn.execute(
            f"INSERT INTO alarms ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
            " ON CONFLICT (alarm_id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols[1:]),
            [row[c] for c in cols],
        )
        changes.append(conn, "alarm", row["alarm_id"], row)


def _shelved(row: dict[str, Any]) -> bool:
    return row["shelved_until"] is not None


# What applying an event needs besides the alarm row, read with it (one round trip):
# the unit's maintenance mode set through the API (NULL: not set) and whether this
# occurrence's clear arrived before its activation.
_EVENT_CONTEXT = (
    "(SELECT maintenance FROM unit_modes WHERE unit_id = %s) AS unit_maintenance,"
    " EXISTS (SELECT 1 FROM alarm_journal WHERE occurrence_id = %s"
    " AND action = 'early_cleared') AS early_cleared"
)


def _load(
    conn: psycopg.Connection[Any], aid: str, event: ConditionEvent
) -> tuple[dict[str, Any] | None, bool | None, bool]:
    """(alarm row locked FOR UPDATE or None, maintenance set through the API or None,
    clear seen before this activation)."""
    params = (event.unit, event.occurrence_id)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {ALARM_COLUMNS}, {_EVENT_CONTEXT} FROM alarms WHERE alarm_id = %s FOR UPDATE",
            (*params, aid),
        )
        row = cur.fetchone()
        if row is not None:
            return row, row.pop("unit_maintenance"), bool(row.pop("early_cleared"))
        cur.execute(f"SELECT {_EVENT_CONTEXT}", params)  # a new alarm
        found = cur.fetchone()
    assert found is not None
    return None, found["unit_maintenance"], bool(found["early_cleared"])


def unit_in_maintenance(conn: psycopg.Connection[Any], unit: str, plant: PlantView) -> bool:
    """Maintenance mode set through the API, else the registry's default."""
    row = conn.execute("SELECT maintenance FROM unit_modes WHERE unit_id = %s", (unit,)).fetchone()
    return bool(row[0]) if row else unit in plant.maintenance_units


def apply_event(
    conn: psycopg.Connection[Any], event: ConditionEvent, ctx: Context | None = None
) -> Change | None:
    """Apply a condition event once (by event id); None if a replay, stale or early."""
    ctx = ctx or Context()
    aid = alarm_id(event)
    with changes.transaction(conn):
        row, maintenance, cleared_before = _load(conn, aid, event)
        current = row["state"] if row else None
        same = row is not None and row["occurrence_id"] == event.occurrence_id
        stale = row is not None and not same and event.activated_at < row["activated_at"]
        early_clear = event.state == "cleared" and not same and not stale
        already_cleared = event.state == "active" and cleared_before
        action = ("stale_" if stale else "early_" if early_clear else "") + event.state
        base: BaseState | None = row["base_state"] if row else None
        if not (stale or early_clear):
            base = on_condition(base, True) if event.state == "active" else base
            if event.state == "cleared" or already_cleared:
                base = on_condition(base, False)
        inserted = journal_entry(
            conn,
            event.ts,
            aid,
            action,
            current,
            base or "NORMAL",
            "system",
            {
                "explanation": event.explanation,
                "value": event.value,
                "priority": row["priority"] if row else None,
            },
            event.occurrence_id,
            event.event_id,
        )
        if not inserted or stale or early_clear or base is None:
            return None  # a replay, an old event arriving late, or a clear seen first
        new_occurrence = event.state == "active"
        if maintenance is None:  # not set through the API: the registry's default
            maintenance = event.unit in ctx.plant.maintenance_units
        row = _updated(row, event, base, already_cleared, ctx, bool(maintenance))
        if new_occurrence:
            noise.on_activation(conn, row, event.ts, ctx.limits)
        row.update(from_state=current, changed_by="system", event_id=event.event_id)
        save(conn, row)
        if ctx.rules is not None:
            from alerting import incidents

            if is_sensor_fault(event.condition):
                # never a process incident; it makes incidents on this sensor less certain
                incidents.refresh_confidence(conn, event.sensors[0])
            else:
                incidents.evaluate(conn, ctx.rules, ctx.plant, row, event.ts)
    return Change(aid, current, row["state"], event, "system")


def _updated(
    row: dict[str, Any] | None,
    e: ConditionEvent,
    base: BaseState,
    already_cleared: bool,
    ctx: Context,
    suppressed: bool,
) -> dict[str, Any]:
    info = ctx.plant.sensors.get(e.sensors[0])
    new: dict[str, Any] = (
        dict(row)
        if row
        else {
            "alarm_id": alarm_id(e),
            "out_of_service": False,
            "shelved_until": None,
            "shelve_reason": None,
            "shelved_by": None,
            "chattering": False,
            "chatter_count": 0,
            "activations": 0,
            "flood_id": None,
            "acked_at": None,
            "acked_by": None,
        }
    )
    active = e.state == "active" and not already_cleared
    new.update(
        site_id=e.site,
        unit_id=e.unit,
        sensor_id=e.sensors[0],
        condition=e.condition,
        area=ctx.plant.area(e.unit),
        base_state=base,
        active=active,
        severity=e.severity,
        value=e.value,
        threshold=e.threshold,
        explanation=e.explanation,
        category="maintenance" if is_sensor_fault(e.condition) else "process",
        priority=priority(
            e.condition,
            e.severity,
            info.consequence if info else None,
            info.response_time_s if info else None,
            ctx.plant.grade(e.unit),
        ),
        occurrence_id=e.occurrence_id,
        activated_at=e.activated_at,
        updated_at=e.ts,
        suppressed=suppressed,
    )
    if e.state == "active":
        new.update(
            activations=new["activations"] + 1,
            acked_at=None,
            acked_by=None,
            cleared_at=e.ts if already_cleared else None,
        )
    else:
        new["cleared_at"] = e.ts
    return new


def list_alarms(
    conn: psycopg.Connection[Any],
    annunciated_only: bool = True,
    site: str | None = None,
    area: str | None = None,
    priority_in: list[str] | None = None,
    state_in: list[str] | None = None,
    category: str | None = None,
) -> list[dict[str, Any]]:
    """Alarms, by priority (critical first) then newest first."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if annunciated_only:
        where.append("state IN ('UNACK', 'ACKED', 'RTNUN')")
    for column, value in (("site_id", site), ("area", area), ("category", category)):
        if value:
            where.append(f"{column} = %s")
            params.append(value)
    for column, values in (("priority", priority_in), ("state", state_in)):
        if values:
            where.append(f"{column} = ANY(%s)")
            params.append(values)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE {' AND '.join(where)}"
            " ORDER BY CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1"
            " WHEN 'medium' THEN 2 ELSE 3 END, activated_at DESC",
            params,
        )
        return list(cur.fetchall())


def journal(
    conn: psycopg.Connection[Any], aid: str, occurrence: str | None = None
) -> list[dict[str, Any]]:
    """The journal of one alarm (or of one occurrence of it), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, time, action, from_state, to_state, username, details,"
            " event_id::text, occurrence_id::text FROM alarm_journal WHERE alarm_id = %s"
            " AND (%s::uuid IS NULL OR occurrence_id = %s::uuid) ORDER BY time, id",
            (aid, occurrence, occurrence),
        )
        return list(cur.fetchall())


def history(
    conn: psycopg.Connection[Any], since: datetime, site: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Journal entries of all alarms since a time, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT j.id, j.time, j.alarm_id, j.action, j.from_state, j.to_state, j.username,"
            " j.details, j.occurrence_id::text FROM alarm_journal j"
            " LEFT JOIN alarms a USING (alarm_id)"
            " WHERE j.time >= %s AND (%s::text IS NULL OR a.site_id = %s)"
            " ORDER BY j.time DESC, j.id DESC LIMIT %s",
            (since, site, site, limit),
        )
        return list(cur.fetchall())


def shelve_expiry(now: datetime, duration_s: float) -> datetime:
    return now + timedelta(seconds=duration_s)
