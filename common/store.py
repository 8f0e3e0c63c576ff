"""Writes of the detector workers: readings, anomalies, offsets and state, in one transaction.

Readings: a batch is written with binary COPY into a temp staging table;
``stage_remove_stored()`` (migration 0007) drops the rows already stored (replays).
When none were, the same COPY payload goes straight into ``readings`` under a
savepoint (COPY's multi-row insert is several times faster than INSERT ... SELECT)
and ``rollup_staged_readings()`` folds the batch into ``readings_1m`` / ``readings_1h``
(plain PostgreSQL; TimescaleDB's continuous aggregates do that there). Otherwise, or
when the unique key rejects the COPY (a concurrent writer, a batch with a key twice),
``ingest_staged_readings()`` runs ``INSERT ... ON CONFLICT DO NOTHING`` and rolls up
exactly the rows it inserted. Either way a replay adds nothing and counts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import psycopg

from common import pgcopy
from common.conditions import ConditionEvent

_STAGE = "readings_stage"

# The database cannot do our work right now but may again later: the connection or the
# server went away, the disk is full (both OperationalError), or the server was switched
# to read-only. Long-running writers wait and retry on these; anything else is a bug.
UNAVAILABLE: tuple[type[psycopg.Error], ...] = (
    psycopg.OperationalError,
    psycopg.errors.ReadOnlySqlTransaction,
)


def write_readings(
    conn: psycopg.Connection[Any],
    sensor_ids: list[str],
    sensor_code: np.ndarray,
    unit_ids: list[str],
    unit_code: np.ndarray,
    ts_ns: np.ndarray,
    ingest_ns: np.ndarray,
    value: np.ndarray,
    quality: np.ndarray,
) -> int:
    """Insert readings (columns as arrays, text columns as codes); return rows inserted."""
    n = len(ts_ns)
    if n == 0:
        return 0
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
        "(LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    payload = pgcopy.build(
        [
            pgcopy.timestamptz(ts_ns),
            pgcopy.Text(sensor_code, sensor_ids),
            pgcopy.Text(unit_code, unit_ids),
            pgcopy.float8(value),
            pgcopy.Fixed(np.asarray(quality, np.int16), ">i2"),
            pgcopy.timestamptz(ingest_ns),
        ],
        n,
    )
    with conn.cursor() as cur:
        _copy(cur, _STAGE, payload)
        row = cur.execute("SELECT stage_remove_stored()").fetchone()
        if row is not None and row[0] == 0:
            try:
                with conn.transaction():  # a savepoint inside the caller's transaction
                    _copy(cur, "readings", payload)
            except psycopg.errors.UniqueViolation:
                pass  # stored meanwhile by another writer, or a key twice in the batch
            else:
                cur.execute("SELECT rollup_staged_readings()")
                cur.execute(f"TRUNCATE {_STAGE}")
                return n
        row = cur.execute("SELECT ingest_staged_readings()").fetchone()
        inserted = int(row[0]) if row else 0
        cur.execute(f"TRUNCATE {_STAGE}")
    return inserted


def _copy(cur: psycopg.Cursor[Any], table: str, payload: bytes) -> None:
    with cur.copy(
        f"COPY {table} (time, sensor_id, unit_id, value, quality, ingest_time)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(payload)


def insert_anomalies(conn: psycopg.Connection[Any], events: Iterable[ConditionEvent]) -> None:
    """Record condition transitions (and queue them for publication)."""
    rows = [
        (
            e.event_id,
            e.occurrence_id,
            e.ts,
            e.activated_at,
            e.state,
            e.site,
            e.unit,
            e.sensors[0],
            e.condition,
            e.severity,
            e.value,
            e.threshold,
            e.detector,
            e.explanation,
            e.to_json().decode(),
        )
        for e in events
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO anomalies (event_id, occurrence_id, time, activated_at, state,"
                " site_id, unit_id, sensor_id, condition, severity, value, threshold,"
                " detector, explanation, payload)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (event_id) DO NOTHING",
                rows,
            )


def unpublished_anomalies(
    conn: psycopg.Connection[Any], limit: int = 10_000
) -> list[ConditionEvent]:
    """Condition events written but not yet acknowledged by Kafka (oldest first)."""
    rows = conn.execute(
        "SELECT payload::text FROM anomalies WHERE NOT published ORDER BY time LIMIT %s",
        (limit,),
    ).fetchall()
    return [ConditionEvent.from_json(r[0].encode()) for r in rows]


def mark_published(conn: psycopg.Connection[Any], event_ids: list[str]) -> None:
    """Mark condition events as delivered to Kafka."""
    if event_ids:
        conn.execute(
            "UPDATE anomalies SET published = true WHERE event_id = ANY(%s::uuid[])",
            (event_ids,),
        )


def save_offsets(
    conn: psycopg.Connection[Any], group_id: str, offsets: Mapping[tuple[str, int], int]
) -> None:
    """Store the next offset to read per (topic, partition), in the caller's transaction."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (group_id, topic, partition)"
            " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
            [(group_id, t, p, o) for (t, p), o in offsets.items()],
        )


def load_offsets(conn: psycopg.Connection[Any], group_id: str, topic: str) -> dict[int, int]:
    """Stored next offsets per partition of one topic."""
    rows = conn.execute(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = %s AND topic = %s",
        (group_id, topic),
    ).fetchall()
    return {int(p): int(o) for p, o in rows}


def save_state(
    conn: psycopg.Connection[Any], detector: str, states: Mapping[str, Mapping[str, Any]]
) -> None:
    """Snapshot detector state per unit (JSON), in the caller's transaction."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO detector_state (unit_id, detector, state) VALUES (%s, %s, %s)"
            " ON CONFLICT (unit_id, detector)"
            " DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
            [(unit, detector, json.dumps(state)) for unit, state in states.items()],
        )


def load_state(conn: psycopg.Connection[Any], detector: str) -> dict[str, dict[str, Any]]:
    """Every unit's last snapshot of one detector."""
    rows = conn.execute(
        "SELECT unit_id, state FROM detector_state WHERE detector = %s", (detector,)
    ).fetchall()
    return dict(rows)


def read_unit_readings(
    conn: psycopg.Connection[Any], unit_id: str, start: Any, end: Any
) -> list[tuple[Any, str, float]]:
    """Usable readings (time, sensor, value) of one unit in [start, end), oldest first."""
    rows = conn.execute(
        "SELECT time, sensor_id, value FROM readings WHERE unit_id = %s AND time >= %s"
        " AND time < %s AND quality <> 2 AND value = value ORDER BY time",
        (unit_id, start, end),
    ).fetchall()
    return [(r[0], str(r[1]), float(r[2])) for r in rows]


def save_model(
    conn: psycopg.Connection[Any],
    unit_id: str,
    kind: str,
    model: Mapping[str, Any],
    train_from: Any,
    train_to: Any,
    n_rows: int,
) -> int:
    """Store a new version of a unit's model; return its version number."""
    row = conn.execute(
        "INSERT INTO detector_models (unit_id, kind, version, train_from, train_to, n_rows, model)"
        " SELECT %s, %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s FROM detector_models"
        " WHERE unit_id = %s AND kind = %s RETURNING version",
        (unit_id, kind, train_from, train_to, n_rows, json.dumps(model), unit_id, kind),
    ).fetchone()
    assert row is not None
    return int(row[0])


def load_models(conn: psycopg.Connection[Any], kind: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """The newest model version of every unit for one kind: unit -> (version, model)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (unit_id) unit_id, version, model FROM detector_models"
        " WHERE kind = %s ORDER BY unit_id, version DESC",
        (kind,),
    ).fetchall()
    return {str(u): (int(v), dict(m)) for u, v, m in rows}
