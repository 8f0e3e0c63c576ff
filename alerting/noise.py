"""Nuisance alarm handling: chattering (auto-shelve + bad-actor marker) and floods.

Chattering: an alarm activated ``chatter_activations`` times within
``chatter_window_s`` is shelved for ``chatter_shelve_s`` and marked for the bad-actor
report. Flood: more than ``flood_start`` new alarms within ``flood_window_s`` on one
console (site + area) opens a flood that groups the alarms and records the first-out;
it ends when fewer than ``flood_end`` arrive within the window (docs/domain.md 1.5-1.6).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from alerting import changes

if TYPE_CHECKING:
    from alerting.store import NoiseLimits

_NEW_IN_WINDOW = (
    "SELECT j.alarm_id, j.time FROM alarm_journal j JOIN alarms a USING (alarm_id)"
    " WHERE a.site_id = %s AND a.area = %s AND a.category = 'process'"
    " AND j.action = 'active' AND j.time > %s AND j.time <= %s ORDER BY j.time, j.id"
)


def on_activation(
    conn: psycopg.Connection[Any], row: dict[str, Any], ts: datetime, limits: NoiseLimits
) -> None:
    """Update ``row`` (not yet saved) for a new activation at ``ts``."""
    _chatter(conn, row, ts, limits)
    if row["category"] == "process":
        _flood(conn, row, ts, limits)


def _chatter(
    conn: psycopg.Connection[Any], row: dict[str, Any], ts: datetime, limits: NoiseLimits
) -> None:
    found = conn.execute(
        "SELECT count(*) FROM alarm_journal WHERE alarm_id = %s AND action = 'active'"
        " AND time > %s AND time <= %s",
        (row["alarm_id"], ts - timedelta(seconds=limits.chatter_window_s), ts),
    ).fetchone()
    count = int(found[0]) if found else 0
    if count < limits.chatter_activations or row["shelved_until"] is not None:
        return
    from alerting.store import journal_entry

    row.update(
        chattering=True,
        chatter_count=row["chatter_count"] + 1,
        shelved_until=ts + timedelta(seconds=limits.chatter_shelve_s),
        shelve_reason=f"chattering: {count} activations in {limits.chatter_window_s:g} s",
        shelved_by="system",
    )
    journal_entry(
        conn,
        ts,
        row["alarm_id"],
        "shelve",
        row.get("state"),
        "SHELVED",
        "system",
        {"reason": row["shelve_reason"], "until": row["shelved_until"], "automatic": True},
        row["occurrence_id"],
    )


def _flood(
    conn: psycopg.Connection[Any], row: dict[str, Any], ts: datetime, limits: NoiseLimits
) -> None:
    site, area = row["site_id"], row["area"]
    # An open flood first: then the window does not matter (one indexed row). The window
    # query costs as much as the activations in it (tens of thousands under a flood of a
    # few per second), which made every event slower the longer a flood went on.
    open_flood = conn.execute(
        "UPDATE floods SET alarm_count = alarm_count + 1"
        " WHERE site_id = %s AND area = %s AND ended_at IS NULL RETURNING id",
        (site, area),
    ).fetchone()
    if open_flood is not None:
        row["flood_id"] = int(open_flood[0])
        return
    window_start = ts - timedelta(seconds=limits.flood_window_s)
    new = int(row["activations"] == 1)  # first activation ever: the alarm row is not saved yet
    # Whether more than flood_start arrived needs at most flood_start + 1 rows.
    recent = _new_in_window(conn, site, area, window_start, ts, limits.flood_start + 1 - new)
    if len(recent) + new <= limits.flood_start:
        return
    recent = _new_in_window(conn, site, area, window_start, ts)  # a flood starts: all of them
    if new:
        recent.append((row["alarm_id"], ts))
    first_alarm, _first_time = min(recent, key=lambda r: r[1])
    flood = conn.execute(
        "INSERT INTO floods (site_id, area, started_at, first_alarm_id, alarm_count)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (site, area, ts, first_alarm, len(recent)),
    ).fetchone()
    assert flood is not None
    row["flood_id"] = int(flood[0])
    members = [a for a, _ in recent if a != row["alarm_id"]]
    conn.execute("UPDATE alarms SET flood_id = %s WHERE alarm_id = ANY(%s)", (flood[0], members))
    changes.append(conn, "flood", str(flood[0]), _flood_row(conn, int(flood[0])))


def _new_in_window(
    conn: psycopg.Connection[Any],
    site: str,
    area: str,
    start: datetime,
    end: datetime,
    limit: int | None = None,
) -> list[tuple[str, datetime]]:
    """New process alarms of a console in (start, end], oldest first (at most ``limit``)."""
    return [
        (str(a), t)
        for a, t in conn.execute(
            _NEW_IN_WINDOW + " LIMIT %s", (site, area, start, end, limit)
        ).fetchall()
    ]


def end_floods(conn: psycopg.Connection[Any], now: datetime, limits: NoiseLimits) -> list[int]:
    """Close floods whose console is quiet again; return their ids."""
    ended = []
    with changes.transaction(conn):
        floods = conn.execute(
            "SELECT id, site_id, area FROM floods WHERE ended_at IS NULL FOR UPDATE"
        ).fetchall()
        for flood_id, site, area in floods:
            start = now - timedelta(seconds=limits.flood_window_s)
            # fewer than flood_end? at most flood_end rows say it (not the whole window)
            if len(_new_in_window(conn, site, area, start, now, limits.flood_end)) < (
                limits.flood_end
            ):
                conn.execute("UPDATE floods SET ended_at = %s WHERE id = %s", (now, flood_id))
                changes.append(conn, "flood", str(flood_id), _flood_row(conn, flood_id))
                ended.append(int(flood_id))
    return ended


def _flood_row(conn: psycopg.Connection[Any], flood_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM floods WHERE id = %s", (flood_id,))
        row = cur.fetchone()
    assert row is not None
    return row


def open_floods(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Floods in progress, with their first-out alarm."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM floods WHERE ended_at IS NULL ORDER BY started_at")
        return list(cur.fetchall())
