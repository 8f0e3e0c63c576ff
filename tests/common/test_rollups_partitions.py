"""Plain PostgreSQL storage: rollups from the write path, partitions, retention."""

from __future__ import annotations

import threading
import time

import numpy as np
import psycopg
import pytest

from common import store
from common.migrate import migrate
from common.settings import BaseProcessSettings
from tests.fixtures.old_schema import apply_migrations_before
from tests.fixtures.services import Isolation, database

pytestmark = pytest.mark.integration

NS = 1_000_000_000
SENSORS = ["S-1", "S-2", "S-3", "S-4"]


def write(db: psycopg.Connection, ts_ns: np.ndarray, values: np.ndarray, codes: np.ndarray) -> int:
    with db.transaction():
        return write_in_txn(db, ts_ns, values, codes)


def write_in_txn(
    db: psycopg.Connection,
    ts_ns: np.ndarray,
    values: np.ndarray,
    codes: np.ndarray,
    defer_rollups: bool = False,
) -> int:
    """The readings of SENSORS (unit U1) in the caller's transaction."""
    return store.write_readings(
        db,
        SENSORS,
        codes,
        ["U1"],
        np.zeros(len(ts_ns), np.int64),
        ts_ns,
        ts_ns + 1000,
        values,
        np.where(np.isnan(values), 2, 0),
        defer_rollups=defer_rollups,
    )


def batch(start_ns: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n readings, 4 sensors round-robin, 7 s apart per sensor, some NaN."""
    rng = np.random.default_rng(seed)
    step = np.arange(n)
    ts = start_ns + (step // 4) * 7 * NS
    values = rng.normal(10, 3, n)
    values[rng.random(n) < 0.05] = np.nan
    return ts, values, step % 4


ROLLUP_FROM_RAW = """
SELECT time_bucket(%(width)s::interval, time) AS bucket, sensor_id, count(value),
       sum(value), min(value), max(value),
       (array_agg(value ORDER BY time DESC))[1], max(time)
  FROM readings GROUP BY 1, 2 ORDER BY 2, 1
"""
ROLLUP_TABLE = """
SELECT bucket, sensor_id, samples, value_sum, value_min, value_max, value_last, last_time
  FROM {table} ORDER BY 2, 1
"""


def assert_rollups_match_raw(db: psycopg.Connection) -> None:
    for table, width in (("readings_1m", "1 minute"), ("readings_1h", "1 hour")):
        want = db.execute(ROLLUP_FROM_RAW, {"width": width}).fetchall()
        got = db.execute(ROLLUP_TABLE.format(table=table)).fetchall()
        assert len(got) == len(want) > 0, table
        for g, w in zip(got, want, strict=True):
            assert g[:3] == w[:3], (table, g, w)
            assert g[3] == pytest.approx(w[3]), (table, g, w)
            assert g[4:] == w[4:], (table, g, w)
    avg = db.execute(
        "SELECT bool_and(value_avg IS NOT DISTINCT FROM value_sum / NULLIF(samples, 0))"
        " FROM readings_1m"
    ).fetchone()[0]
    assert avg


def test_rollups_follow_the_write_path_and_ignore_replays(db: psycopg.Connection) -> None:
    start = (time.time_ns() // (3600 * NS) - 3) * 3600 * NS  # 3 h ago, on the hour
    ts, values, codes = batch(start, 6000, seed=1)
    assert write(db, ts[:4000], values[:4000], codes[:4000]) == 4000
    assert_rollups_match_raw(db)
    # A replay overlapping half of the stored rows, plus new rows in the same buckets:
    # only the 2000 new rows may change the rollups.
    assert write(db, ts[2000:], values[2000:], codes[2000:]) == 2000
    assert write(db, ts, values, codes) == 0  # full replay: nothing at all
    assert_rollups_match_raw(db)
    # Rows arriving out of order must not move `last` backwards.
    late = ts[:8] - 3 * NS
    assert write(db, late, np.full(8, 99.0), codes[:8]) == 8
    assert_rollups_match_raw(db)


def partitions(db: psycopg.Connection, parent: str) -> list[str]:
    rows = db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (parent,),
    ).fetchall()
    return [r[0] for r in rows]


def day_suffix(ns: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(ns / NS))


def test_partitions_are_made_ahead_and_on_demand(db: psycopg.Connection) -> None:
    now = time.time_ns()
    made = partitions(db, "readings_raw")
    # migrate ran storage_maintain(): today and `ahead` (3 days) exist, plus the default.
    for days in range(4):
        assert f"readings_raw_p{day_suffix(now + days * 86400 * NS)}" in made
    assert "readings_raw_default" in made
    assert f"readings_1m_raw_p{day_suffix(now)[:6]}" in partitions(db, "readings_1m_raw")
    # A batch 20 days back gets its partitions from the write path itself.
    old = now - 20 * 86400 * NS
    ts, values, codes = batch(old, 40, seed=2)
    assert write(db, ts, values, codes) == 40
    assert f"readings_raw_p{day_suffix(old)}" in partitions(db, "readings_raw")
    in_default = db.execute("SELECT count(*) FROM readings_raw_default").fetchone()[0]
    assert in_default == 0


def test_rows_outside_the_window_wait_in_the_default_partition(db: psycopg.Connection) -> None:
    far = time.time_ns() + 10 * 86400 * NS  # beyond `ahead` (3 days)
    ts, values, codes = batch(far, 20, seed=3)
    assert write(db, ts, values, codes) == 20
    assert db.execute("SELECT count(*) FROM readings_raw_default").fetchone()[0] == 20
    # Once the window reaches that day its partition is created and the rows move in.
    db.execute("UPDATE storage_policy SET ahead = interval '12 days'")
    lines = [r[0] for r in db.execute("SELECT storage_maintain()")]
    assert any(line.startswith("created") for line in lines), lines
    assert db.execute("SELECT count(*) FROM readings_raw_default").fetchone()[0] == 0
    part = f"readings_raw_p{day_suffix(far)}"
    assert db.execute(f"SELECT count(*) FROM {part}").fetchone()[0] == 20
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 20


def test_retention_drops_old_partitions_and_keeps_rollups(db: psycopg.Connection) -> None:
    now = time.time_ns()
    old = now - 30 * 86400 * NS
    ts, values, codes = batch(old, 40, seed=4)
    assert write(db, ts, values, codes) == 40
    ts, values, codes = batch(now - 3600 * NS, 40, seed=5)
    assert write(db, ts, values, codes) == 40
    db.execute("UPDATE storage_policy SET raw_keep = interval '10 days'")
    lines = [r[0] for r in db.execute("SELECT storage_maintain()")]
    assert f"dropped readings_raw_p{day_suffix(old)}" in lines
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 40
    # Rollups are kept for rollup_keep (2 years): the old minute buckets are still there.
    assert db.execute(
        "SELECT sum(samples) FROM readings_1m WHERE bucket < now() - interval '20 days'"
    ).fetchone()[0] == int((~np.isnan(batch(old, 40, seed=4)[1])).sum())
    # Nothing left to drop: a second run does nothing.
    assert not [r[0] for r in db.execute("SELECT storage_maintain()") if "dropped" in r[0]]


def test_a_schema_from_before_partitioning_keeps_its_rows(
    stack: BaseProcessSettings, isolation: Isolation, db: psycopg.Connection
) -> None:
    schema = isolation.schema + "_legacy"
    db.execute(f"CREATE SCHEMA {schema}")
    db.execute(
        f"CREATE TABLE {schema}.readings (time timestamptz NOT NULL, sensor_id text NOT NULL,"
        " unit_id text NOT NULL, value double precision, quality smallint NOT NULL DEFAULT 0,"
        " ingest_time timestamptz NOT NULL, PRIMARY KEY (sensor_id, time))"
    )
    db.execute(f"CREATE INDEX readings_time_idx ON {schema}.readings (time DESC)")
    db.execute(
        f"INSERT INTO {schema}.readings SELECT now() - i * interval '1 hour', 'S-1', 'U1', i, 0,"
        " now() FROM generate_series(1, 100) i"
    )
    try:
        migrate(database(stack, isolation).model_copy(update={"db_schema": schema}))
        kind, count = db.execute(
            f"SELECT (SELECT relkind FROM pg_class WHERE oid = '{schema}.readings_raw'::regclass),"
            f" (SELECT count(*) FROM {schema}.readings)"
        ).fetchone()
        assert (kind, count) == ("p", 100)
    finally:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


def test_rollup_columns_match_the_timescaledb_views(db: psycopg.Connection) -> None:
    from tests.common.test_timescale import ROLLUP_COLUMNS

    for table in ("readings_1m", "readings_1h"):
        cols = db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        assert tuple(c[0] for c in cols) == ROLLUP_COLUMNS, table


def test_a_batch_with_a_key_twice_falls_back_to_the_exact_path(db: psycopg.Connection) -> None:
    start = (time.time_ns() // (3600 * NS) - 1) * 3600 * NS
    ts, values, codes = batch(start, 400, seed=6)
    ts[10], codes[10] = ts[11], codes[11]  # the same (sensor, time) twice in one batch
    assert write(db, ts, values, codes) == 399
    assert_rollups_match_raw(db)
    # A later batch whose rows another writer stored between the check and the COPY
    # behaves the same: simulated by storing part of it first in the same transaction.
    ts2, values2, codes2 = batch(start + 1800 * NS, 400, seed=7)
    with db.transaction():
        store.write_readings(
            db,
            SENSORS,
            codes2[:50],
            ["U1"],
            np.zeros(50, np.int64),
            ts2[:50],
            ts2[:50],
            values2[:50],
            np.zeros(50, np.int16),
        )
        inserted = store.write_readings(
            db,
            SENSORS,
            codes2,
            ["U1"],
            np.zeros(400, np.int64),
            ts2,
            ts2,
            values2,
            np.zeros(400, np.int16),
        )
    assert inserted == 350
    assert_rollups_match_raw(db)


def test_a_shuffled_batch_and_its_shuffled_replay_are_stored_once(
    db: psycopg.Connection,
) -> None:
    start = (time.time_ns() // (3600 * NS) - 2) * 3600 * NS
    ts, values, codes = batch(start, 3000, seed=8)
    rng = np.random.default_rng(9)
    first = rng.permutation(2000)  # arrival order is not key order: the write path sorts
    assert write(db, ts[first], values[first], codes[first]) == 2000
    assert_rollups_match_raw(db)
    every = rng.permutation(3000)  # a shuffled replay of all of it plus 1000 new rows
    assert write(db, ts[every], values[every], codes[every]) == 1000
    assert write(db, ts[every[::-1]], values[every[::-1]], codes[every[::-1]]) == 0
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 3000
    assert_rollups_match_raw(db)


def test_concurrent_writers_in_the_same_buckets_keep_rollups_exact(
    stack: BaseProcessSettings, isolation: Isolation, db: psycopg.Connection
) -> None:
    """Writer B finds no stored bucket, but A (not yet committed) is making them: B's
    COPY into the rollup tables waits for A, hits the unique key, and upserts instead."""
    start = (time.time_ns() // (3600 * NS) - 1) * 3600 * NS
    ts, values, codes = batch(start, 800, seed=10)
    tick = np.arange(800) // 4 % 2  # the same sensors and buckets, alternate times
    a_rows, b_rows = np.flatnonzero(tick == 0), np.flatnonzero(tick == 1)
    with psycopg.connect(database(stack, isolation).conninfo(), autocommit=True) as other:
        with db.transaction():
            assert write_rows(db, ts, values, codes, a_rows) == 400
            done: list[int] = []
            writer_b = threading.Thread(
                target=lambda: done.append(write(other, ts[b_rows], values[b_rows], codes[b_rows]))
            )
            writer_b.start()
            writer_b.join(timeout=1.0)
            assert writer_b.is_alive()  # waiting for A's uncommitted keys
        writer_b.join(timeout=30)
    assert done == [400]
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 800
    assert_rollups_match_raw(db)


def write_rows(
    db: psycopg.Connection, ts: np.ndarray, values: np.ndarray, codes: np.ndarray, rows: np.ndarray
) -> int:
    """write() of some rows, in the caller's open transaction."""
    return store.write_readings(
        db,
        SENSORS,
        codes[rows],
        ["U1"],
        np.zeros(len(rows), np.int64),
        ts[rows],
        ts[rows] + 1000,
        values[rows],
        np.where(np.isnan(values[rows]), 2, 0),
    )


def test_a_text_keyed_schema_is_converted_with_its_rows(
    stack: BaseProcessSettings, isolation: Isolation, db: psycopg.Connection
) -> None:
    """Migration 0040 on a schema that has readings keyed by text (before 0040)."""
    from common.migrate import available

    schema = isolation.schema + "_text"
    settings = database(stack, isolation).model_copy(update={"db_schema": schema})
    db.execute(f"CREATE SCHEMA {schema}")
    try:
        with psycopg.connect(settings.conninfo(), autocommit=True) as old:
            old.execute(f"SET search_path TO {schema}, public")
            apply_migrations_before(old, 40)
            # 3 sensors x 200 readings over the last ~3 h, through the old write function;
            # S-2 moved from unit U1 to U2 half-way (its newest unit wins).
            old.execute(
                "CREATE TEMP TABLE readings_stage (LIKE readings INCLUDING DEFAULTS);"
                " INSERT INTO readings_stage SELECT now() - i * interval '50 seconds',"
                " 'S-' || s, CASE WHEN s = 2 AND i < 100 THEN 'U2' ELSE 'U1' END,"
                " CASE WHEN i % 13 = 0 THEN NULL ELSE i * s END, 0, now()"
                " FROM generate_series(0, 199) i, generate_series(1, 3) s;"
                " SELECT ingest_staged_readings()"
            )
            before = old.execute(
                "SELECT sensor_id, count(*), count(value), sum(value), min(time), max(time)"
                " FROM readings GROUP BY 1 ORDER BY 1"
            ).fetchall()
            rollups = old.execute("SELECT * FROM readings_1m ORDER BY sensor_id, bucket").fetchall()
        assert migrate(settings) == [v for v, _n, _t in available() if v >= 40]
        with psycopg.connect(settings.conninfo(), autocommit=True) as new:
            new.execute(f"SET search_path TO {schema}, public")
            after = new.execute(
                "SELECT sensor_id, count(*), count(value), sum(value), min(time), max(time)"
                " FROM readings GROUP BY 1 ORDER BY 1"
            ).fetchall()
            assert after == before
            assert len(after) == 3
            assert new.execute(
                "SELECT sensor_id, unit_id FROM sensor_keys ORDER BY sensor_key"
            ).fetchall() == [("S-1", "U1"), ("S-2", "U2"), ("S-3", "U1")]
            assert new.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass"
            ).fetchone() == ("v",)
            # Since 0042 a rollup row's unit is its sensor's (S-2 moved to U2).
            moved = [(r[0], r[1], "U2" if r[1] == "S-2" else r[2], *r[3:]) for r in rollups]
            assert (
                new.execute("SELECT * FROM readings_1m ORDER BY sensor_id, bucket").fetchall()
                == moved
            )
            # The converted rows are the primary key's: a replay of them stores nothing.
            ts = np.array(
                [r[0] for r in new.execute("SELECT extract(epoch FROM time)::float8 * 1e6"
                                           " FROM readings WHERE sensor_id = 'S-3' ORDER BY time")],
                np.int64,
            ) * 1000  # fmt: skip
            with new.transaction():
                stored = store.write_readings(
                    new, ["S-3"], np.zeros(len(ts), np.int64), ["U1"],
                    np.zeros(len(ts), np.int64), ts, ts, np.ones(len(ts)),
                    np.zeros(len(ts), np.int16),
                )  # fmt: skip
            assert stored == 0
    finally:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_writer_that_remembers_its_buckets_stays_exact_when_memory_is_stale(
    stack: BaseProcessSettings,
    isolation: Isolation,
    db: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer skips the stored-bucket probe for sensors whose newest bucket it wrote
    itself. Stale memory: another writer made newer buckets (A's COPY of them is rejected,
    all are upserted), and A's own write was rolled back (taken as stored: upserted)."""
    probes: list[int] = []
    probe = store._stored_buckets

    def counted(*args: object) -> list[np.ndarray]:
        probes.append(1)
        return probe(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_stored_buckets", counted)
    start = (time.time_ns() // (3600 * NS) - 2) * 3600 * NS
    ts, values, codes = batch(start, 1000, seed=11)
    part = [np.arange(lo, lo + 200) for lo in range(0, 1000, 200)]
    assert write_rows_tx(db, ts, values, codes, part[0]) == 200
    assert write_rows_tx(db, ts, values, codes, part[1]) == 200
    assert len(probes) == 1  # the second batch came from memory
    with psycopg.connect(database(stack, isolation).conninfo(), autocommit=True) as other:
        assert write_rows_tx(other, ts, values, codes, part[2]) == 200  # B: newer buckets
    assert write_rows_tx(db, ts, values, codes, part[3]) == 200  # A: COPY rejected, upsert
    with pytest.raises(RuntimeError):  # rolled back after A remembered these buckets
        write_rows_then_fail(db, ts, values, codes, part[4])
    assert write_rows_tx(db, ts, values, codes, part[4]) == 200
    assert len(probes) == 2  # A once, B once
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 1000
    assert_rollups_match_raw(db)


def write_rows_tx(
    db: psycopg.Connection, ts: np.ndarray, values: np.ndarray, codes: np.ndarray, rows: np.ndarray
) -> int:
    """write_rows() in a transaction of its own."""
    with db.transaction():
        return write_rows(db, ts, values, codes, rows)


def write_rows_then_fail(
    db: psycopg.Connection, ts: np.ndarray, values: np.ndarray, codes: np.ndarray, rows: np.ndarray
) -> None:
    """write_rows() in a transaction that then fails."""
    with db.transaction():
        write_rows(db, ts, values, codes, rows)
        raise RuntimeError("the transaction fails after the write")
