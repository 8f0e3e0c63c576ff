"""Operator and supervisor actions on alarms, each journalled with who, when and why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerting import changes, store
from alerting.lifecycle import on_acknowledge, on_release
from alerting.plant import PlantView
from common.errors import ChemWatchError


class ActionError(ChemWatchError):
    """An action that cannot be done; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _locked(conn: psycopg.Connection[Any], aid: str) -> dict[str, Any]:
    row = store.get_alarm(conn, aid, lock=True)
    if row is None:
        raise ActionError(404, f"no alarm {aid!r}")
    return row


def _act(
    conn: psycopg.Connection[Any],
    aid: str,
    action: str,
    user: str,
    now: datetime,
    details: dict[str, Any],
    change: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Lock, change, save and journal one alarm in one transaction."""
    with changes.transaction(conn):
        row = _locked(conn, aid)
        before = row["state"]
        change(row)
        row["updated_at"] = max(row["updated_at"], now)
        row["from_state"] = before  # announced with the change, not a column
        row["changed_by"] = user
        store.save(conn, row)
        store.journal_entry(
            conn, now, aid, action, before, row["state"], user, details, row["occurrence_id"]
        )
    row["to_state"] = row["state"]
    return row


def acknowledge(
    conn: psycopg.Connection[Any], aid: str, user: str, comment: str, now: datetime
) -> dict[str, Any]:
    """Acknowledge (operator): UNACK -> ACKED, RTNUN -> NORMAL."""

    def change(row: dict[str, Any]) -> None:
        new = on_acknowledge(row["base_state"])
        if new is None:
            raise ActionError(409, f"alarm {aid!r} is {row['state']}: nothing to acknowledge")
        row.update(base_state=new, acked_at=now, acked_by=user)

    return _act(conn, aid, "acknowledge", user, now, {"comment": comment}, change)


def shelve(
    conn: psycopg.Connection[Any],
    aid: str,
    user: str,
    reason: str,
    duration_s: float,
    now: datetime,
    may_shelve_critical: bool,
) -> dict[str, Any]:
    """Shelve for a limited time with a reason; critical alarms need a supervisor."""

    def change(row: dict[str, Any]) -> None:
        if row["priority"] == "critical" and not may_shelve_critical:
            raise ActionError(403, f"alarm {aid!r} is critical: only a supervisor may shelve it")
        row.update(
            shelved_until=now + timedelta(seconds=duration_s), shelve_reason=reason, shelved_by=user
        )

    details = {"reason": reason, "duration_s": duration_s}
    return _act(conn, aid, "shelve", user, now, details, change)


def _release(row: dict[str, Any]) -> None:
    """Re-evaluate on leaving SHELVED / DSUPR / OOSRV (only if nothing else hides it)."""
    if not (row["shelved_until"] or row["suppressed"] or row["out_of_service"]):
        row["base_state"] = on_release(row["active"])


def unshelve(
    conn: psycopg.Connection[Any], aid: str, user: str, comment: str, now: datetime
) -> dict[str, Any]:
    """End shelving early: still active -> UNACK, else NORMAL."""

    def change(row: dict[str, Any]) -> None:
        if row["shelved_until"] is None:
            raise ActionError(409, f"alarm {aid!r} is not shelved")
        row.update(shelved_until=None, shelve_reason=None, shelved_by=None, chattering=False)
        _release(row)

    return _act(conn, aid, "unshelve", user, now, {"comment": comment}, change)


def comment(
    conn: psycopg.Connection[Any], aid: str, user: str, text: str, now: datetime
) -> dict[str, Any]:
    """A comment in the alarm's journal (its state does not change)."""
    with changes.transaction(conn):
        row = _locked(conn, aid)
        store.journal_entry(
            conn,
            now,
            aid,
            "comment",
            row["state"],
            row["state"],
            user,
            {"comment": text},
            row["occurrence_id"],
        )
    return row


def set_out_of_service(
    conn: psycopg.Connection[Any], aid: str, user: str, out: bool, reason: str, now: datetime
) -> dict[str, Any]:
    """Remove an alarm from service for maintenance, or return it (re-evaluated)."""

    def change(row: dict[str, Any]) -> None:
        if row["out_of_service"] == out:
            raise ActionError(409, f"alarm {aid!r} is already {'out of' if out else 'in'} service")
        row["out_of_service"] = out
        if not out:
            _release(row)

    action = "out_of_service" if out else "return_to_service"
    return _act(conn, aid, action, user, now, {"reason": reason}, change)


def set_unit_maintenance(
    conn: psycopg.Connection[Any],
    unit: str,
    on: bool,
    user: str,
    reason: str,
    now: datetime,
    plant: PlantView,
) -> list[str]:
    """Suppress (or release) by design every alarm of a unit; return the alarm ids changed."""
    if plant.unit_site and unit not in plant.unit_site:
        raise ActionError(404, f"no unit {unit!r} in the plant registry")
    changed = []
    with changes.transaction(conn):
        conn.execute(
            "INSERT INTO unit_modes (unit_id, maintenance, reason, set_by, set_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (unit_id) DO UPDATE SET"
            " maintenance = EXCLUDED.maintenance, reason = EXCLUDED.reason,"
            " set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at",
            (unit, on, reason, user, now),
        )
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT alarm_id FROM alarms WHERE unit_id = %s AND suppressed <> %s ORDER BY 1",
                (unit, on),
            ).fetchall()
        ]
        for aid in ids:
            row = _locked(conn, aid)
            before = row["state"]
            row["suppressed"] = on
            if not on:
                _release(row)
            store.save(conn, row)
            action = "suppress" if on else "unsuppress"
            store.journal_entry(
                conn,
                now,
                aid,
                action,
                before,
                row["state"],
                user,
                {"reason": reason},
                row["occurrence_id"],
            )
            changed.append(aid)
    return changed


def expire_shelves(conn: psycopg.Connection[Any], now: datetime) -> list[str]:
    """Unshelve every alarm whose shelving time is over (re-evaluated); return their ids."""
    expired = []
    with changes.transaction(conn):
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT alarm_id FROM alarms WHERE shelved_until <= %s ORDER BY 1", (now,)
            ).fetchall()
        ]
        for aid in ids:
            row = _locked(conn, aid)
            before = row["state"]
            row.update(shelved_until=None, shelve_reason=None, shelved_by=None, chattering=False)
            _release(row)
            store.save(conn, row)
            store.journal_entry(
                conn,
                now,
                aid,
                "shelve_expired",
                before,
                row["state"],
                "system",
                {},
                row["occurrence_id"],
            )
            expired.append(aid)
    return expired
