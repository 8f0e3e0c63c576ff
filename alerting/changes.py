"""The ordered change log behind the live stream (SSE) and its resume by Last-Event-ID.

Every alarm, incident and flood change appends one row in the same transaction as
the change itself. Appenders take one transaction-level advisory lock first, so ids
become visible in id order and a reader that resumes "after id N" misses nothing.

Writers open their transaction with ``transaction(conn)``, which takes that lock
*before* any row lock: a writer that locked an alarm row and then waited for the lock
while another held the lock and waited for the row was a deadlock (seen under an
alarm flood with operators acknowledging).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_LOCK_KEY = 0x41_4C_52_54  # "ALRT"
# Per schema (the second key), so deployments sharing a database do not serialise.
_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"


def jsonable(value: Any) -> Any:
    """Rows as JSON: datetimes in ISO 8601, everything else as is."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# Connections inside an outermost ``transaction()``: they hold the lock until it ends, so
# nested transactions and ``append`` skip taking it again (a round trip each, per event).
# The value: whether nested ``transaction()`` blocks are savepoints.
_holding: weakref.WeakKeyDictionary[psycopg.Connection[Any], bool] = weakref.WeakKeyDictionary()


@contextmanager
def transaction(conn: psycopg.Connection[Any], savepoints: bool = True) -> Iterator[None]:
    """A transaction (or savepoint) that may append changes: takes the log's lock first.

    With ``savepoints=False`` the ``transaction()`` blocks nested in this one are part of
    it rather than savepoints (two round trips each fewer): for a caller that rolls the
    whole transaction back on any error anyway.
    """
    nested = _holding.get(conn)
    if nested is not None:  # inside ours: the lock is held already
        if nested:
            with conn.transaction():
                yield
        else:
            yield
        return
    # Only a transaction we begin keeps the lock for all that follows: one taken inside
    # someone else's savepoint is released if that savepoint rolls back.
    outermost = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        conn.execute(_LOCK, (_LOCK_KEY,))
        if outermost:
            _holding[conn] = savepoints
        try:
            yield
        finally:
            _holding.pop(conn, None)


def append(
    conn: psycopg.Connection[Any], kind: str, entity_id: str, payload: dict[str, Any]
) -> int:
    """Record a change (call inside the transaction that makes it); return its id."""
    if conn not in _holding:  # (re-entrant, but a round trip)
        conn.execute(_LOCK, (_LOCK_KEY,))
    row = conn.execute(
        "INSERT INTO change_log (kind, entity_id, payload) VALUES (%s, %s, %s) RETURNING id",
        (kind, entity_id, Jsonb(jsonable(payload))),
    ).fetchone()
    assert row is not None
    return int(row[0])


def since(
    conn: psycopg.Connection[Any], after_id: int, limit: int = 500
) -> list[tuple[int, str, str]]:
    """Changes after ``after_id`` in order: (id, kind, JSON text)."""
    rows = conn.execute(
        "SELECT id, kind, payload::text FROM change_log WHERE id > %s ORDER BY id LIMIT %s",
        (after_id, limit),
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def last_id(conn: psycopg.Connection[Any]) -> int:
    """Id of the newest change (0 when there is none)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM change_log").fetchone()
    return int(row[0]) if row else 0


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(jsonable(payload), separators=(",", ":"))
