"""Storage on a real PostgreSQL: binary COPY, replays ignored, migrations idempotent."""

from __future__ import annotations

import threading

import numpy as np
import psycopg
import pytest

from common import store
from common.migrate import available, migrate
from common.settings import BaseProcessSettings
from tests.fixtures.services import Isolation, database

pytestmark = pytest.mark.integration


def write(db: psycopg.Connection, n: int, shift: int = 0, on_conflict: str = "savepoint") -> int:
    rng = np.random.default_rng(7)
    sensors = ["A-1", "B-22", "Ünïcode-333"]
    step = np.arange(n) + shift
    codes = step % 3  # the same (sensor, time) pairs when a shifted batch overlaps
    ts = 1_790_000_000_000_000_000 + step * 1_000_000  # 1 ms apart
    values = rng.normal(50, 10, n)
    values[::10] = np.nan
    with db.transaction():
        return store.write_readings(
            db,
            sensors,
            codes,
            ["U1", "U2"],
            codes % 2,
            ts,
            ts + 5_000,
            values,
            np.where(np.isnan(values), 2, 0),
            on_conflict=on_conflict,  # type: ignore[arg-type]
        )


def test_binary_copy_round_trip(db: psycopg.Connection) -> None:
    assert write(db, 1000) == 1000
    rows = db.execute(
        "SELECT sensor_id, unit_id, value, quality, extract(epoch FROM time)::float8,"
        " extract(epoch FROM ingest_time - time)::float8 FROM readings ORDER BY time"
    ).fetchall()
    rng = np.random.default_rng(7)
    codes = np.arange(1000) % 3
    values = rng.normal(50, 10, 1000)
    values[::10] = np.nan
    names = ["A-1", "B-22", "Ünïcode-333"]
    assert [r[0] for r in rows] == [names[c] for c in codes]
    assert [r[1] for r in rows] == [["U1", "U2"][c % 2] for c in codes]
    assert rows[0][2] is None  # NaN stored as NULL ...
    assert rows[0][3] == 2  # ... with quality bad
    assert [r[2] for r in rows[1:10]] == list(values[1:10])
    assert rows[1][4] == pytest.approx(1_790_000_000.001)
    assert float(rows[0][5]) == pytest.approx(5e-6)


def test_replayed_rows_are_ignored(db: psycopg.Connection) -> None:
    assert write(db, 500) == 500
    assert write(db, 500, shift=250) == 250  # half overlaps
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 750


def test_without_a_savepoint_a_replay_aborts_and_the_staged_redo_is_exact(
    db: psycopg.Connection,
) -> None:
    """The detector worker's mode: no savepoint per batch; a replay raises, the caller's
    transaction is rolled back whole, and the redo on the staged path stores the rest."""
    assert write(db, 500, on_conflict="raise") == 500
    with pytest.raises(psycopg.errors.UniqueViolation):
        write(db, 500, shift=250, on_conflict="raise")
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 500  # nothing half
    assert write(db, 500, shift=250, on_conflict="staged") == 250
    assert write(db, 100, shift=900, on_conflict="staged") == 100  # fresh rows: all stored
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 850


def test_migrations_are_idempotent_and_safe_concurrently(
    stack: BaseProcessSettings, isolation: Isolation, db: psycopg.Connection
) -> None:
    settings = database(stack, isolation).model_copy(update={"db_schema": isolation.schema + "_c"})
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(settings))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = [v for v, _n, _s in available()]
    assert sorted(v for r in results for v in r) == versions  # each applied exactly once
    assert migrate(settings) == []
    db.execute(f"DROP SCHEMA {settings.db_schema} CASCADE")


def test_time_bucket_exists_on_plain_postgresql(db: psycopg.Connection) -> None:
    got = db.execute(
        "SELECT time_bucket(interval '15 minutes', timestamptz '2026-11-29 10:22:31+00')"
    ).fetchone()[0]
    assert got.isoformat() == "2026-11-29T10:15:00+00:00"
