"""The loss check: what the load generator's ledger says against the readings table."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg

from chemwatch.e2e.plant import PROBE_UNIT
from common.settings import DatabaseSettings
from simulators.load import verify

_WHERE = "WHERE time >= %s AND time < %s AND unit_id <> %s"


def _span(t0: float, t1: float) -> tuple[datetime, datetime, str]:
    return datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t1, UTC), PROBE_UNIT


def stored_count(conn: psycopg.Connection, t0: float, t1: float) -> int:
    """Load readings stored with a source time in [t0, t1)."""
    row = conn.execute(f"SELECT count(*) FROM readings {_WHERE}", _span(t0, t1)).fetchone()
    return int(row[0]) if row else 0


def wait_for(
    database: DatabaseSettings, t0: float, t1: float, expected: int, deadline: float,
    poll_s: float = 0.25,
) -> tuple[int, float | None]:  # fmt: skip
    """Poll until ``expected`` readings of [t0, t1) are stored or ``deadline`` (epoch s)
    passes; return (stored, wall time it was reached or None)."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        while True:
            stored = stored_count(conn, t0, t1)
            now = time.time()
            if stored >= expected:
                return stored, now
            if now > deadline:
                return stored, None
            time.sleep(poll_s)


def last_commit(database: DatabaseSettings, t0: float, t1: float) -> float | None:
    """Commit time (epoch s) of the last transaction that stored readings of [t0, t1);
    needs ``track_commit_timestamp = on``."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        # xmin of the physical rows: the readings view has none (migration 0040)
        row = conn.execute(
            "SELECT extract(epoch FROM max(pg_xact_commit_timestamp(r.xmin)))::float8"
            " FROM readings_raw r JOIN sensor_keys k USING (sensor_key)"
            " WHERE r.time >= %s AND r.time < %s AND k.unit_id <> %s",
            _span(t0, t1),
        ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def mismatches(
    database: DatabaseSettings, ledger: dict[str, list[int]], t0: float, t1: float
) -> list[str]:
    """Sensors whose count, timestamp sum or value sum differ from the ledger."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT sensor_id, count(*), sum((extract(epoch FROM time) * 1000)::bigint),"
            f" sum(round(value * 100)::bigint) FROM readings {_WHERE} GROUP BY sensor_id",
            _span(t0, t1),
        ).fetchall()
    return verify(ledger, rows)


def state_bytes(database: DatabaseSettings) -> int:
    """Size of the detectors' latest state snapshots (JSON) in the database."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_column_size(state)), 0) FROM detector_state"
        ).fetchone()
        return int(row[0]) if row else 0
