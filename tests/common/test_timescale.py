"""The TimescaleDB flavour of the migrations, on PGlite + TimescaleDB 2.23 (WASM, via Node).

TimescaleDB cannot be installed on these machines; this proves the hypertable,
compression, continuous aggregates, retention policies and the write-path function.
Needs only Node (skips when absent), no running services.
"""

from __future__ import annotations

from typing import Any

import pytest

from common.migrate import available
from tests.fixtures.pglite import run_pglite

ROLLUP_COLUMNS = (
    "bucket",
    "sensor_id",
    "unit_id",
    "samples",
    "value_sum",
    "value_min",
    "value_max",
    "value_avg",
    "value_last",
    "last_time",
)

STAGE = """
CREATE TEMP TABLE IF NOT EXISTS readings_stage (LIKE readings INCLUDING DEFAULTS);
TRUNCATE readings_stage;
INSERT INTO readings_stage (time, sensor_id, unit_id, value, quality, ingest_time)
SELECT timestamptz '2026-11-20 00:00:00+00' + (i / 3) * interval '7 seconds',
       'S-' || (i % 3), 'U1', CASE WHEN i % 17 = 0 THEN NULL ELSE (i * 37 % 101)::float8 END,
       0, now()
  FROM generate_series({lo}, {hi}) i;
CREATE TEMP TABLE IF NOT EXISTS inserted (n bigint);
INSERT INTO inserted SELECT ingest_staged_readings();
"""

# The direct path of common/store.write_readings, with INSERT standing in for the COPY:
# partitions for the batch, then the rows straight into readings (no rollups sent).
DIRECT = """
CREATE TEMP TABLE IF NOT EXISTS by_writer (b boolean);
INSERT INTO by_writer SELECT rollups_by_writer()
  FROM (SELECT ensure_time_partitions(timestamptz '2026-11-20 00:00:00+00',
                                      timestamptz '2026-11-21 00:00:00+00')) p;
INSERT INTO readings (time, sensor_id, unit_id, value, quality, ingest_time)
SELECT timestamptz '2026-11-20 00:00:00+00' + (i / 3) * interval '7 seconds',
       'S-' || (i % 3), 'U1', (i * 37 % 101)::float8, 0, now()
  FROM generate_series({lo}, {hi}) i;
SELECT fold_staged_rollups();
"""

# Its exact path, after the unique key rejected the direct COPY: stage, drop the rows
# already stored, insert the rest.
EXACT = """
CREATE TEMP TABLE IF NOT EXISTS readings_stage (LIKE readings INCLUDING DEFAULTS);
TRUNCATE readings_stage;
INSERT INTO readings_stage (time, sensor_id, unit_id, value, quality, ingest_time)
SELECT timestamptz '2026-11-20 00:00:00+00' + (i / 3) * interval '7 seconds',
       'S-' || (i % 3), 'U1', (i * 37 % 101)::float8, 0, now()
  FROM generate_series({lo}, {hi}) i;
CREATE TEMP TABLE IF NOT EXISTS removed (n bigint);
INSERT INTO removed SELECT stage_remove_stored();
CREATE TEMP TABLE IF NOT EXISTS inserted (n bigint);
INSERT INTO inserted SELECT ingest_staged_readings();
"""

CHECKS = {
    "removed": "SELECT n FROM removed",
    "by_writer": "SELECT b FROM by_writer",
    "flavour": "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
    "hypertable": "SELECT hypertable_name, num_dimensions, compression_enabled"
    " FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings_raw'",
    "chunk_interval": "SELECT time_interval::text AS chunk_interval"
    " FROM timescaledb_information.dimensions WHERE hypertable_name = 'readings_raw'",
    "compression": "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc"
    " FROM timescaledb_information.compression_settings"
    " WHERE hypertable_name = 'readings_raw' ORDER BY attname",
    "caggs": "SELECT view_name, materialized_only"
    " FROM timescaledb_information.continuous_aggregates ORDER BY view_name",
    "jobs": "SELECT proc_name, coalesce(h.hypertable_name, j.hypertable_name) AS target,"
    " j.config::text AS config"
    " FROM timescaledb_information.jobs j"
    " LEFT JOIN timescaledb_information.continuous_aggregates h"
    "   ON h.materialization_hypertable_name = j.hypertable_name"
    " WHERE proc_name LIKE 'policy_%' ORDER BY 1, 2",
    "inserted": "SELECT n FROM inserted ORDER BY n",
    "readings": "SELECT count(*) AS n FROM readings",
    "rollup_1m_vs_raw": """
        SELECT count(*) AS mismatches FROM (
          SELECT time_bucket('1 minute', time) AS bucket, sensor_id, count(value) AS samples,
                 sum(value) AS value_sum, min(value) AS value_min, max(value) AS value_max,
                 last(value, time) AS value_last, max(time) AS last_time
            FROM readings GROUP BY 1, 2) raw
        FULL JOIN readings_1m m USING (bucket, sensor_id)
        WHERE m.samples IS DISTINCT FROM raw.samples
           OR m.value_sum IS DISTINCT FROM raw.value_sum
           OR m.value_min IS DISTINCT FROM raw.value_min
           OR m.value_max IS DISTINCT FROM raw.value_max
           OR m.value_last IS DISTINCT FROM raw.value_last
           OR m.last_time IS DISTINCT FROM raw.last_time
           OR abs(m.value_avg - m.value_sum / NULLIF(m.samples, 0)) > 1e-9""",
    "rollup_1h_vs_raw": """
        SELECT count(*) AS mismatches FROM (
          SELECT time_bucket('1 hour', time) AS bucket, sensor_id, count(value) AS samples,
                 min(value) AS value_min, max(value) AS value_max,
                 last(value, time) AS value_last
            FROM readings GROUP BY 1, 2) raw
        FULL JOIN readings_1h h USING (bucket, sensor_id)
        WHERE h.samples IS DISTINCT FROM raw.samples
           OR h.value_min IS DISTINCT FROM raw.value_min
           OR h.value_max IS DISTINCT FROM raw.value_max
           OR h.value_last IS DISTINCT FROM raw.value_last""",
    "rollup_rows": "SELECT (SELECT count(*) FROM readings_1m) AS m,"
    " (SELECT count(*) FROM readings_1h) AS h",
    "columns": "SELECT table_name, string_agg(column_name, ',' ORDER BY ordinal_position) AS cols"
    " FROM information_schema.columns WHERE table_name IN ('readings_1m', 'readings_1h')"
    " AND table_schema = current_schema() GROUP BY 1 ORDER BY 1",
    "refresh_pending": "SELECT view_name FROM pending_log ORDER BY 1",
    "readings_kind": "SELECT relkind FROM pg_class WHERE relname = 'readings'",
    "sensor_keys": "SELECT sensor_id, unit_id FROM sensor_keys ORDER BY sensor_key",
    "time_bucket": "SELECT time_bucket('15 minutes',"
    " timestamptz '2026-11-29 10:22:31+00')::text AS b",
    "compressed": "SELECT count(*) AS n FROM chunk_compression_stats('readings_raw')"
    " WHERE compression_status = 'Compressed'",
}


@pytest.fixture(scope="module")
def timescale() -> dict[str, Any]:
    # Migrations before the integer sensor key (0040) and rows keyed by text; then
    # 0040 converts them (rows kept, aggregates rebuilt: the range to refresh is noted).
    setup = [text for v, _n, text in available("timescale") if v < 40]
    setup += ["SELECT storage_maintain()", STAGE.format(lo=0, hi=2999)]
    setup += [text for v, _n, text in available("timescale") if v >= 40]
    setup += [
        "CREATE TABLE pending_log AS SELECT view_name FROM rollup_refresh_pending",
        "SELECT storage_maintain()",
        STAGE.format(lo=1500, hi=4499),  # half a replay: 1500 new rows only
        "CALL refresh_continuous_aggregate('readings_1m', NULL, NULL)",
        "CALL refresh_continuous_aggregate('readings_1h', NULL, NULL)",
        STAGE.format(lo=4500, hi=4600),  # after the refresh: real-time part of the caggs
        "SELECT compress_chunk(c) FROM show_chunks('readings_raw') c",
        STAGE.format(lo=0, hi=10),  # replay into a compressed chunk
        EXACT.format(lo=4550, hi=4700),  # 51 stored already, 100 new
        DIRECT.format(lo=4701, hi=4800),
        # What the refresh policies do on schedule: the hour bucket materialised above
        # is stale until then (real-time aggregation only covers the unmaterialised end).
        "CALL refresh_continuous_aggregate('readings_1m', NULL, NULL)",
        "CALL refresh_continuous_aggregate('readings_1h', NULL, NULL)",
        "UPDATE storage_policy"
        " SET raw_keep = interval '30 days', rollup_keep = interval '400 days'",
        "CREATE TABLE maintain_log AS SELECT storage_maintain() AS line",
    ]
    queries = [*CHECKS.items(), ("maintain_log", "SELECT line FROM maintain_log ORDER BY 1")]
    return run_pglite(setup, queries, max_rows=100)


def rows(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    query = next(q for q in result["queries"] if q["name"] == name)
    assert query["ok"], f"{name}: {query['error']}"
    return list(query["rows"])


def test_readings_is_a_compressed_hypertable_with_day_chunks(timescale: dict[str, Any]) -> None:
    assert timescale["timescaledb"].startswith("2.")
    assert rows(timescale, "hypertable") == [
        {"hypertable_name": "readings_raw", "num_dimensions": 1, "compression_enabled": True}
    ]
    assert rows(timescale, "readings_kind") == [{"relkind": "v"}]  # the view on readings_raw
    assert rows(timescale, "chunk_interval") == [{"chunk_interval": "1 day"}]
    settings = {r["attname"]: r for r in rows(timescale, "compression")}
    assert settings["sensor_key"]["segmentby_column_index"] == 1
    assert settings["time"]["orderby_column_index"] == 1
    assert settings["time"]["orderby_asc"] is False
    assert int(rows(timescale, "compressed")[0]["n"]) >= 1


def test_continuous_aggregates_and_policies(timescale: dict[str, Any]) -> None:
    assert rows(timescale, "caggs") == [
        {"view_name": "readings_1h", "materialized_only": False},
        {"view_name": "readings_1m", "materialized_only": False},
    ]
    jobs = {(r["proc_name"], r["target"]): r["config"] for r in rows(timescale, "jobs")}
    assert ("policy_compression", "readings_raw") in jobs
    assert ("policy_refresh_continuous_aggregate", "readings_1m") in jobs
    assert ("policy_refresh_continuous_aggregate", "readings_1h") in jobs
    # storage_maintain() replaced the retention policies with the changed windows.
    assert '"30 days"' in jobs[("policy_retention", "readings_raw")]
    assert '"400 days"' in jobs[("policy_retention", "readings_1m")]
    assert '"400 days"' in jobs[("policy_retention", "readings_1h")]
    log = [r["line"] for r in rows(timescale, "maintain_log")]
    assert len(log) == 3, log


def test_write_path_ignores_replays_and_rollups_match_raw(timescale: dict[str, Any]) -> None:
    assert [int(r["n"]) for r in rows(timescale, "inserted")] == [0, 100, 101, 1500, 3000]
    assert [int(r["n"]) for r in rows(timescale, "removed")] == [51]
    assert rows(timescale, "by_writer") == [{"b": False}]  # the caggs do the rollups
    assert int(rows(timescale, "readings")[0]["n"]) == 4801
    assert int(rows(timescale, "rollup_1m_vs_raw")[0]["mismatches"]) == 0
    assert int(rows(timescale, "rollup_1h_vs_raw")[0]["mismatches"]) == 0
    # The first 3000 rows were written keyed by text and converted by migration 0040.
    assert rows(timescale, "refresh_pending") == [
        {"view_name": "readings_1h"},
        {"view_name": "readings_1m"},
    ]
    assert rows(timescale, "sensor_keys") == [
        {"sensor_id": f"S-{i}", "unit_id": "U1"} for i in range(3)
    ]
    counts = rows(timescale, "rollup_rows")[0]
    assert int(counts["m"]) > int(counts["h"]) > 0


def test_same_columns_as_the_plain_postgresql_rollup_tables(timescale: dict[str, Any]) -> None:
    cols = ",".join(ROLLUP_COLUMNS)
    assert rows(timescale, "columns") == [
        {"table_name": "readings_1h", "cols": cols},
        {"table_name": "readings_1m", "cols": cols},
    ]
    assert rows(timescale, "time_bucket") == [{"b": "2026-11-29 10:15:00+00"}]
