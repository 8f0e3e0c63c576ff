"""The integer sensor key (migration 0040): readings_raw + sensor_keys behind the readings view.

The writer caches sensor keys per connection; these tests make the cache meet a key
that was rolled back, a sensor that moved to another unit, a re-created key table and
a concurrent writer adding the same sensors, and check the readers' plans.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import psycopg
import pytest

from common import store
from common.settings import BaseProcessSettings
from tests.fixtures.services import Isolation, database

pytestmark = pytest.mark.integration

NS = 1_000_000_000
ORPHANS = (
    "SELECT count(*) FROM readings_raw r"
    " WHERE NOT EXISTS (SELECT 1 FROM sensor_keys k WHERE k.sensor_key = r.sensor_key)"
)


def write(db: psycopg.Connection, sensors: list[str], unit: str, start_ns: int, n: int = 30) -> int:
    """n readings per sensor, 10 s apart, all of one unit (in the caller's transaction)."""
    k = len(sensors)
    step = np.arange(n * k)
    ts = start_ns + (step // k) * 10 * NS
    return store.write_readings(
        db,
        sensors,
        step % k,
        [unit],
        np.zeros(n * k, np.int64),
        ts,
        ts + 1000,
        np.arange(n * k, dtype=np.float64),
        np.zeros(n * k, np.int16),
    )


def write_then_fail(db: psycopg.Connection, sensors: list[str], start_ns: int) -> None:
    """A (sub)transaction that writes, then fails."""
    with db.transaction():
        assert write(db, sensors, "U1", start_ns) == 30 * len(sensors)
        raise RuntimeError("fails after the write")


def counts(db: psycopg.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT sensor_id, count(*) FROM readings GROUP BY 1").fetchall())


def test_a_key_made_in_a_rolled_back_transaction_is_not_reused(db: psycopg.Connection) -> None:
    start = (time.time_ns() // NS - 3600) * NS
    with pytest.raises(RuntimeError):
        write_then_fail(db, ["NEW-1", "NEW-2"], start)  # the worker's transaction fails
    assert db.execute("SELECT count(*) FROM sensor_keys").fetchone()[0] == 0
    with db.transaction():
        assert write(db, ["NEW-1", "NEW-2"], "U1", start) == 60
    # The same in a savepoint of a transaction that goes on and commits.
    with db.transaction():
        with pytest.raises(RuntimeError):
            write_then_fail(db, ["NEW-3"], start)  # rolled back to the savepoint
        assert write(db, ["NEW-3", "NEW-4"], "U1", start + 3600 * NS) == 60
    with db.transaction():  # a later transaction: the pending keys become cached
        assert write(db, ["NEW-1", "NEW-3", "NEW-4"], "U1", start + 7200 * NS) == 90
    assert db.execute(ORPHANS).fetchone()[0] == 0
    assert counts(db) == {"NEW-1": 60, "NEW-2": 30, "NEW-3": 60, "NEW-4": 60}


def test_a_sensor_reported_with_another_unit_moves_with_its_history(
    db: psycopg.Connection,
) -> None:
    start = (time.time_ns() // NS - 3600) * NS
    with db.transaction():
        write(db, ["M-1", "M-2"], "U1", start)
    with db.transaction():
        write(db, ["M-1", "M-2"], "U1", start + 600 * NS)  # cached now
    with db.transaction():
        write(db, ["M-1"], "U2", start + 1200 * NS)
    units = db.execute("SELECT sensor_id, unit_id, count(*) FROM readings GROUP BY 1, 2").fetchall()
    assert sorted(units) == [("M-1", "U2", 90), ("M-2", "U1", 60)]
    assert db.execute("SELECT count(*) FROM sensor_keys").fetchone()[0] == 2
    # the rollups (keyed since 0042) name the sensor's unit too, for every bucket
    assert db.execute(
        "SELECT DISTINCT unit_id FROM readings_1m WHERE sensor_id = 'M-1' ORDER BY 1"
    ).fetchall() == [("U2",)]
    assert db.execute(
        "SELECT sum(samples) FROM readings_1m WHERE sensor_id = 'M-1'"
    ).fetchone() == (90,)


def test_a_recreated_key_table_resets_the_cache(db: psycopg.Connection) -> None:
    start = (time.time_ns() // NS - 3600) * NS
    with db.transaction():
        write(db, ["R-1", "R-2"], "U1", start)
    with db.transaction():
        write(db, ["R-1", "R-2"], "U1", start + 600 * NS)
    db.execute("TRUNCATE readings_raw, sensor_keys RESTART IDENTITY")
    with db.transaction():  # R-2 first now: its key is 1, which R-1 had before
        write(db, ["R-2"], "U1", start)
    with db.transaction():
        write(db, ["R-1", "R-2"], "U1", start + 600 * NS)
    assert counts(db) == {"R-1": 30, "R-2": 60}
    assert db.execute(ORPHANS).fetchone()[0] == 0


def test_concurrent_writers_adding_the_same_sensors_share_one_key(
    stack: BaseProcessSettings, isolation: Isolation, db: psycopg.Connection
) -> None:
    """B asks for sensors A is adding (uncommitted): B waits for A. If A rolls back,
    B adds them itself; if A commits, B uses A's keys."""
    start = (time.time_ns() // NS - 3600) * NS
    sensors = [f"C-{i}" for i in range(5)]
    with psycopg.connect(database(stack, isolation).conninfo(), autocommit=True) as other:
        for outcome in ("rollback", "commit"):
            done: list[int] = []
            offset = 0 if outcome == "rollback" else 1800 * NS

            def writer_b(offset: int = offset, done: list[int] = done) -> None:
                with other.transaction():
                    done.append(write(other, sensors, "U1", start + offset + 5 * NS))

            try:
                with db.transaction():
                    write(db, sensors, "U1", start + offset)
                    b = threading.Thread(target=writer_b)
                    b.start()
                    b.join(timeout=1.0)
                    assert b.is_alive()  # waiting for A's uncommitted keys
                    if outcome == "rollback":
                        raise RuntimeError("A fails")
            except RuntimeError:
                pass
            b.join(timeout=30)
            assert done == [150]
    assert db.execute("SELECT count(*) FROM sensor_keys").fetchone()[0] == 5
    assert db.execute(ORPHANS).fetchone()[0] == 0
    assert counts(db) == dict.fromkeys(sensors, 90)  # B twice, A once (committed)


def test_readers_reach_the_rows_through_the_primary_key(db: psycopg.Connection) -> None:
    """One sensor's or one unit's time range: the sensors by name, then the primary
    key (sensor_key, time) of the day's partition per sensor (nested loop)."""
    start = (time.time_ns() // NS - 6 * 3600) * NS
    sensors = [f"P-{i:03d}" for i in range(200)]
    for u in range(20):
        with db.transaction():
            write(db, sensors[u * 10 : (u + 1) * 10], f"U{u:02d}", start, n=120)
    db.execute("ANALYZE readings_raw")
    db.execute("ANALYZE sensor_keys")
    lo = f"to_timestamp({start / NS + 300})"
    hi = f"to_timestamp({start / NS + 900})"
    for where in ("sensor_id = 'P-042'", "unit_id = 'U07' AND quality <> 2 AND value = value"):
        plan = "\n".join(
            r[0]
            for r in db.execute(
                f"EXPLAIN SELECT time, sensor_id, value FROM readings WHERE {where}"
                f" AND time >= {lo} AND time < {hi} ORDER BY time"
            )
        )
        assert "Nested Loop" in plan, plan
        assert "_pkey on readings_raw_p" in plan, plan
        assert "Seq Scan on readings_raw" not in plan, plan
