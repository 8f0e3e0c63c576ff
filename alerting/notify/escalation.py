"""Escalation: which (subject, tier, channel) notifications are due, created exactly once.

Alarms: an unacknowledged process alarm (UNACK or RTNUN) matching a route gets tier k
once ``tiers[k].after_s`` have passed since its activation. Incidents: an open,
unacknowledged incident gets tier k ``after_s`` after it reached its current level;
the subject includes the level, so a worsening incident starts again at tier 0, at
once. With ``repeat_s`` the last tier's channels are notified again every
``repeat_s`` (steps '{tier}.{k}') until someone acknowledges. The idempotency key
'{subject}:{step}:{channel}' is the primary key of ``notifications``: a due
notification is recorded once, whatever restarts happen.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerting.changes import jsonable
from alerting.incidents import LEVEL_RANK
from alerting.notify.settings import NotifySettings, Route
from alerting.priority import RANK


def _site_ok(route: Route, site: str) -> bool:
    return not route.sites or site in route.sites


def _due(
    conn: psycopg.Connection[Any],
    route: Route,
    subject: str,
    since: datetime,
    now: datetime,
    payload: dict[str, Any],
) -> int:
    steps = [(str(i), i, tier.channels, tier.after_s) for i, tier in enumerate(route.tiers)]
    if route.repeat_s:
        last, final = len(route.tiers) - 1, route.tiers[-1]
        repeats = int(max((now - since).total_seconds() - final.after_s, 0) // route.repeat_s)
        steps += [
            (f"{last}.{k}", last, final.channels, final.after_s + k * route.repeat_s)
            for k in range(1, repeats + 1)
        ]
    created = 0
    for label, index, channels, after_s in steps:
        if now < since + timedelta(seconds=after_s):
            continue
        for channel in channels:
            row = conn.execute(
                "INSERT INTO notifications (idempotency_key, subject, tier, channel,"
                " next_attempt_at, created_at, payload) VALUES (%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1",
                (
                    f"{subject}:{label}:{channel}",
                    subject,
                    index,
                    channel,
                    now,
                    now,
                    Jsonb(jsonable(payload | {"tier": index, "step": label, "channel": channel})),
                ),
            ).fetchone()
            created += row is not None
    return created


def escalate(conn: psycopg.Connection[Any], notify: NotifySettings, now: datetime) -> int:
    """Record every notification that is due at ``now``; return how many are new."""
    if not notify.routes:
        return 0
    created = 0
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT alarm_id, site_id, unit_id, area, condition, priority, state, value,"
            " threshold, explanation, occurrence_id::text, activated_at FROM alarms"
            " WHERE state IN ('UNACK', 'RTNUN') AND category = 'process'"
        )
        alarms = cur.fetchall()
        cur.execute("SELECT * FROM incidents WHERE closed_at IS NULL AND acked_at IS NULL")
        incidents = cur.fetchall()
        for route in notify.routes:
            if route.alarms:
                for a in alarms:
                    if (
                        _site_ok(route, a["site_id"])
                        and RANK[a["priority"]] >= RANK[route.min_priority]
                    ):
                        subject = f"alarm:{a['occurrence_id']}"
                        created += _due(
                            conn, route, subject, a["activated_at"], now, {"kind": "alarm", **a}
                        )
            if route.incidents:
                for i in incidents:
                    if (
                        _site_ok(route, i["site_id"])
                        and LEVEL_RANK[i["level"]] >= LEVEL_RANK[route.min_level]
                    ):
                        reached = datetime.fromisoformat(i["details"]["levels"][-1][0])
                        subject = f"incident:{i['id']}:{i['level']}"
                        created += _due(
                            conn, route, subject, reached, now, {"kind": "incident", **i}
                        )
    return created
