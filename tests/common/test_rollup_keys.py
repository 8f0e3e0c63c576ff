"""Integer-keyed rollup tables (migration 0042, plain PostgreSQL): readings_1m_raw /
readings_1h_raw behind the readings_1m / readings_1h views.

A schema written by the code before 0042 (text-keyed rollups, text rollup_pending) is
converted with every value kept, and a replay afterwards stores nothing twice; the
dashboards' one-sensor queries on the views go through the primary key.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg
import pytest

from common import store
from common.migrate import migrate
from common.settings import BaseProcessSettings
from tests.common.test_rollups_partitions import ROLLUP_FROM_RAW, ROLLUP_TABLE
from tests.fixtures.old_schema import apply_migrations_before
from tests.fixtures.services import Isolation, database

pytestmark = pytest.mark.integration

NS = 1_000_000_000
ROLLUPS = "SELECT * FROM {table} ORDER BY sensor_id, bucket"
# The text stage of the write functions before 0042 (0040's ingest_staged_readings()):
# 3 sensors x 300 readings, 40 s apart, some NULL values; then S-9, whose raw rows are
# gone (past raw_keep, key never made by 0040) but whose rollups are kept.
OLD_WRITES = """
CREATE TEMP TABLE readings_stage (LIKE readings INCLUDING DEFAULTS);
INSERT INTO readings_stage
SELECT to_timestamp(%(start)s) + i * interval '40 seconds', 'S-' || s, 'U' || s,
       CASE WHEN i %% 17 = 0 THEN NULL ELSE i * s + 0.25 END, 0, now()
  FROM generate_series(0, 299) i, generate_series(1, 3) s;
SELECT ingest_staged_readings();
TRUNCATE readings_stage;
INSERT INTO readings_stage
SELECT to_timestamp(%(start)s) + i * interval '90 seconds', 'S-9', 'U9', i, 0, now()
  FROM generate_series(0, 99) i;
SELECT ingest_staged_readings();
DELETE FROM readings_raw WHERE sensor_key = (SELECT sensor_key FROM sensor_keys
                                              WHERE sensor_id = 'S-9');
DELETE FROM sensor_keys WHERE sensor_id = 'S-9';
"""
# Pending partials (0041, text) of 50 later readings of S-1, stored raw without rollups;
# their hour bucket is stored already (merged when folded).
OLD_PENDING = """
INSERT INTO readings (time, sensor_id, unit_id, value, quality, ingest_time)
SELECT to_timestamp(%(start)s) + interval '210 minutes' + i * interval '20 seconds', 'S-1', 'U1',
       i * 1.5, 0, now()
  FROM generate_series(0, 49) i;
INSERT INTO rollup_pending
SELECT lvl.hourly, time_bucket(lvl.width, time), sensor_id, min(unit_id), count(value),
       sum(value), min(value), max(value), (array_agg(value ORDER BY time DESC))[1], max(time)
  FROM readings, (VALUES (false, interval '1 minute'), (true, interval '1 hour')) lvl(hourly, width)
 WHERE time >= to_timestamp(%(start)s) + interval '210 minutes'
 GROUP BY 1, 2, 3;
"""


def _rows(conn: psycopg.Connection[Any], query: str, **params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(query, params or None).fetchall()


def test_text_keyed_rollups_are_converted_with_every_value_and_replays_add_nothing(
    stack: BaseProcessSettings, isolation: Isolation, db: psycopg.Connection
) -> None:
    schema = isolation.schema + "_rk"
    settings = database(stack, isolation).model_copy(update={"db_schema": schema})
    start = (time.time_ns() // (3600 * NS) - 6) * 3600  # 6 h ago, on the hour (seconds)
    db.execute(f"CREATE SCHEMA {schema}")
    try:
        with psycopg.connect(settings.conninfo(), autocommit=True) as old:
            old.execute(f"SET search_path TO {schema}, public")
            apply_migrations_before(old, 42)
            for statement in (OLD_WRITES + OLD_PENDING).split(";\n")[:-1]:
                old.execute(statement, {"start": start})
            before = {
                t: _rows(old, ROLLUPS.format(table=t)) for t in ("readings_1m", "readings_1h")
            }
            pending = _rows(old, "SELECT count(*), sum(samples) FROM rollup_pending")[0]
        assert len(before["readings_1m"]) > len(before["readings_1h"]) > 0
        assert {r[1] for r in before["readings_1h"]} == {"S-1", "S-2", "S-3", "S-9"}
        assert pending[0] > 0
        assert pending[1] == 100  # 50 readings at both levels

        assert migrate(settings) == [42]
        with psycopg.connect(settings.conninfo(), autocommit=True) as new:
            new.execute(f"SET search_path TO {schema}, public")
            kinds = _rows(
                new,
                "SELECT relname, relkind FROM pg_class WHERE relnamespace = %(s)s::regnamespace"
                " AND relname IN ('readings_1m', 'readings_1h', 'readings_1m_raw',"
                " 'readings_1h_raw', 'readings_1m_text', 'readings_1h_text',"
                " 'rollup_pending_text') ORDER BY 1",
                s=schema,
            )
            assert kinds == [
                ("readings_1h", "v"),
                ("readings_1h_raw", "p"),
                ("readings_1m", "v"),
                ("readings_1m_raw", "p"),
            ]
            # Every rollup value is kept, S-9 (rollups only) included; nothing in default.
            for table, rows in before.items():
                assert _rows(new, ROLLUPS.format(table=table)) == rows, table
                assert _rows(new, f"SELECT count(*) FROM {table}_raw_default") == [(0,)]
            assert _rows(new, "SELECT unit_id FROM sensor_keys WHERE sensor_id = 'S-9'") == [
                ("U9",)
            ]
            # The pending partials were converted too: folding them makes the rollups
            # of S-1..S-3 equal to aggregates of the raw rows.
            assert _rows(new, "SELECT count(*), sum(samples) FROM rollup_pending")[0] == pending
            assert store.fold_pending_rollups(new) == pending[0]
            assert_raw_sensors_match(new)
            s9 = [r for r in before["readings_1m"] if r[1] == "S-9"]
            assert _rows(new, "SELECT * FROM readings_1m WHERE sensor_id = 'S-9'"
                              " ORDER BY bucket") == s9  # fmt: skip
            # A replay of every stored raw row, through today's writer, stores nothing and
            # changes no rollup; with 20 new rows per sensor, only those are added.
            stored = _rows(new, "SELECT count(*) FROM readings")[0][0]
            for extra in (0, 20):
                with new.transaction():
                    assert replay(new, extra) == 3 * extra
                assert _rows(new, "SELECT count(*) FROM readings")[0][0] == stored + 3 * extra
                assert_raw_sensors_match(new)
    finally:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


def replay(conn: psycopg.Connection[Any], extra: int) -> int:
    """Write every stored reading of S-1..S-3 again, plus ``extra`` new ones per sensor
    after the newest; returns the rows inserted."""
    rows = _rows(
        conn,
        "SELECT sensor_id, (extract(epoch FROM time) * 1e6)::bigint, value FROM readings"
        " WHERE sensor_id <> 'S-9' ORDER BY time DESC, sensor_id",
    )
    ids = ["S-1", "S-2", "S-3"]
    code = np.array([ids.index(r[0]) for r in rows], np.int64)
    ts = np.array([r[1] for r in rows], np.int64) * 1000
    value = np.array([np.nan if r[2] is None else r[2] for r in rows], np.float64)
    if extra:
        step = np.arange(3 * extra)
        code = np.concatenate([code, step % 3])
        ts = np.concatenate([ts, int(ts.max()) + (step // 3 + 1) * 7 * NS])
        value = np.concatenate([value, step * 0.5])
    return store.write_readings(
        conn, ids, code, ["U1", "U2", "U3"], code, ts, ts, value, np.zeros(len(ts), np.int16)
    )


def assert_raw_sensors_match(conn: psycopg.Connection[Any]) -> None:
    """Both rollup views equal aggregates of the raw rows (sensors with raw rows)."""
    for table, width in (("readings_1m", "1 minute"), ("readings_1h", "1 hour")):
        want = conn.execute(ROLLUP_FROM_RAW, {"width": width}).fetchall()
        got = [r for r in _rows(conn, ROLLUP_TABLE.format(table=table)) if r[1] != "S-9"]
        assert len(got) == len(want) > 0, table
        for g, w in zip(got, want, strict=True):
            assert g[:3] == w[:3], (table, g, w)
            assert g[3] == pytest.approx(w[3]), (table, g, w)
            assert g[4:] == w[4:], (table, g, w)


# The dashboards' one-sensor queries on the rollup views (deploy/grafana/dashboards).
ONE_SENSOR = {
    "sensor detail, 1m branch": (
        "SELECT time_bucket(interval '5 minutes', bucket), sensor_id,"
        " sum(value_sum) / NULLIF(sum(samples), 0) FROM readings_1m"
        " WHERE bucket >= {lo} AND bucket < {hi} AND sensor_id IN ('P-042') GROUP BY 1, 2"
    ),
    "sensor detail, 1h branch (completeness)": (
        "SELECT s.sensor_id, coalesce(sum(r.samples), 0), max(r.last_time) FROM sensors s"
        " LEFT JOIN readings_1h r ON r.sensor_id = s.sensor_id"
        " AND r.bucket >= {lo} AND r.bucket < {hi}"
        " WHERE s.sensor_id IN ('P-042') GROUP BY s.sensor_id"
    ),
    "plant overview, latest value": (
        "SELECT s.sensor_id, l.value_last FROM sensors s LEFT JOIN LATERAL ("
        " SELECT r.value_last FROM readings_1m r WHERE r.sensor_id = s.sensor_id"
        " AND r.bucket > {hi} - interval '1 hour' ORDER BY r.bucket DESC LIMIT 1) l ON true"
        " WHERE s.sensor_id = 'P-042'"
    ),
}


@pytest.mark.parametrize("query", sorted(ONE_SENSOR))
def test_one_sensor_rollup_queries_use_the_primary_key(db: psycopg.Connection, query: str) -> None:
    """The sensor's key by name, then the month partition's primary key (sensor_key,
    bucket) in a nested loop: no scan of a rollup partition that holds rows."""
    start = (time.time_ns() // (3600 * NS) - 30) * 3600 * NS
    sensors = [f"P-{i:03d}" for i in range(200)]
    n = 30 * 12  # 30 h at one reading per 5 minutes
    step = np.arange(n * len(sensors))
    ts = start + (step // len(sensors)) * 300 * NS
    code = step % len(sensors)
    with db.transaction():
        db.execute(
            "INSERT INTO sites (site_id, name, enterprise, region) VALUES ('S', 'S', 'E', 'R');"
            " INSERT INTO units (unit_id, site_id, name, kind) VALUES ('U', 'S', 'U', 'tank')"
        )
        db.execute(
            "INSERT INTO sensors (sensor_id, unit_id, site_id, kind, eng_unit, range_low,"
            " range_high, interval_s) SELECT unnest(%s::text[]), 'U', 'S', 'pressure', 'bar',"
            " 0, 10, 60",
            (sensors,),
        )
        store.write_readings(
            db, sensors, code, ["U"], np.zeros(len(ts), np.int64), ts, ts,
            np.ones(len(ts)), np.zeros(len(ts), np.int16),
        )  # fmt: skip
    for table in ("readings_1m_raw", "readings_1h_raw", "sensor_keys", "sensors"):
        db.execute(f"ANALYZE {table}")
    lo, hi = f"to_timestamp({start // NS + 3600})", f"to_timestamp({start // NS + 20 * 3600})"
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + ONE_SENSOR[query].format(lo=lo, hi=hi)))
    assert "Nested Loop" in plan, plan  # per sensor key into the primary key
    assert "_pkey on readings_1" in plan, plan
    months = {time.strftime("%Y%m", time.gmtime(t)) for t in (start // NS, time.time())}
    for month in months:  # no scan of a partition holding rows (empty ones cost nothing)
        assert f"Seq Scan on readings_1m_raw_p{month}" not in plan, plan
        assert f"Seq Scan on readings_1h_raw_p{month}" not in plan, plan
