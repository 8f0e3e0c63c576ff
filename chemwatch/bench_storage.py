"""``chemwatch bench storage``: rows/s of the readings write path and its alternatives.

Every method runs against the configured PostgreSQL in a private, freshly migrated
schema (dropped afterwards), one transaction per batch as a detector worker does,
with batch sizes 1k/10k/100k. Methods (all but ``copy_direct`` ignore duplicates):

- ``write_path``: common.store.write_readings - binary COPY into a temp staging table,
  stage_remove_stored() (drops rows already stored), then the same COPY straight into
  readings under a savepoint, plus (plain PostgreSQL) the incremental rollups.
- ``stage_upsert_rollups``: the exact fallback of the write path - COPY to staging,
  then INSERT ... ON CONFLICT DO NOTHING RETURNING folded into the rollups.
- ``stage_insert``: COPY to staging + INSERT ON CONFLICT DO NOTHING, no rollups.
- ``stage_merge``: COPY to staging + MERGE ... WHEN NOT MATCHED THEN INSERT.
- ``unnest_insert``: INSERT ... SELECT FROM unnest(<arrays>) ON CONFLICT DO NOTHING.
- ``executemany``: INSERT ... ON CONFLICT DO NOTHING row by row (psycopg pipelines it);
  the baseline, run on fewer rows because it is slow.
- ``copy_direct``: binary COPY straight into readings: NO duplicate protection (a
  replay fails the batch); the ceiling.
- ``write_path_replay``: the write path on a batch already stored (all duplicates).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from common import pgcopy, store
from common.cli import add_common_arguments
from common.migrate import flavour_of, migrate
from common.process import guarded, settings_from_args
from common.settings import BaseProcessSettings

BATCHES = (1_000, 10_000, 100_000)
METHODS = (
    "write_path",
    "stage_upsert_rollups",
    "stage_insert",
    "stage_merge",
    "unnest_insert",
    "executemany",
    "copy_direct",
    "write_path_replay",
)
DEDUP = {m: m != "copy_direct" for m in METHODS}
COLUMNS = "time, sensor_id, unit_id, value, quality, ingest_time"


def add_parser(areas: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bench storage``."""
    p = areas.add_parser("storage", help="readings write throughput", description=__doc__)
    add_common_arguments(p)
    p.add_argument("--rows", type=int, default=200_000, help="rows per method and batch size")
    p.add_argument(
        "--baseline-rows", type=int, default=20_000, help="rows for the slow executemany baseline"
    )
    p.add_argument("--sensors", type=int, default=1_000)
    p.add_argument("--batch", type=int, action="append", help="batch size (repeatable)")
    p.add_argument("--method", choices=METHODS, action="append", help="method (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


class Data:
    """Synthetic readings: ``sensors`` sensors at 10 s, in time order, from 1 day ago."""

    def __init__(self, n_rows: int, n_sensors: int) -> None:
        rng = np.random.default_rng(1)
        step = np.arange(n_rows)
        self.sensor_ids = [f"BENCH-{i:05d}" for i in range(n_sensors)]
        self.unit_ids = [f"U{i:03d}" for i in range(max(1, n_sensors // 10))]
        self.sensor = step % n_sensors
        self.unit = self.sensor // 10 % len(self.unit_ids)
        start = (time.time_ns() // 60_000_000_000 - 24 * 60) * 60_000_000_000
        self.ts = start + (step // n_sensors) * 10_000_000_000
        self.ingest = self.ts + 50_000_000
        self.value = rng.normal(50.0, 5.0, n_rows)
        self.quality = np.zeros(n_rows, np.int16)

    def slice(self, lo: int, hi: int) -> dict[str, Any]:
        sensors, codes = np.unique(self.sensor[lo:hi], return_inverse=True)
        units, ucodes = np.unique(self.unit[lo:hi], return_inverse=True)
        return {
            "sensor_ids": [self.sensor_ids[i] for i in sensors],
            "sensor_code": codes,
            "unit_ids": [self.unit_ids[i] for i in units],
            "unit_code": ucodes,
            "ts_ns": self.ts[lo:hi],
            "ingest_ns": self.ingest[lo:hi],
            "value": self.value[lo:hi],
            "quality": self.quality[lo:hi],
        }


def _payload(b: dict[str, Any]) -> bytes:
    return pgcopy.build(
        [
            pgcopy.timestamptz(b["ts_ns"]),
            pgcopy.Text(b["sensor_code"], b["sensor_ids"]),
            pgcopy.Text(b["unit_code"], b["unit_ids"]),
            pgcopy.float8(b["value"]),
            pgcopy.Fixed(np.asarray(b["quality"], np.int16), ">i2"),
            pgcopy.timestamptz(b["ingest_ns"]),
        ],
        len(b["ts_ns"]),
    )


def _copy(cur: psycopg.Cursor[Any], table: str, payload: bytes) -> None:
    with cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(payload)


def _stage(cur: psycopg.Cursor[Any], b: dict[str, Any]) -> None:
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bench_stage (LIKE readings INCLUDING DEFAULTS)"
        " ON COMMIT DELETE ROWS"
    )
    _copy(cur, "bench_stage", _payload(b))


def write_path(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    store.write_readings(conn, **b)


def stage_upsert_rollups(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS readings_stage (LIKE readings INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        _copy(cur, "readings_stage", _payload(b))
        cur.execute("SELECT ingest_staged_readings()")


def stage_insert(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        _stage(cur, b)
        cur.execute("INSERT INTO readings SELECT * FROM bench_stage ON CONFLICT DO NOTHING")


def stage_merge(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        _stage(cur, b)
        cur.execute(
            "MERGE INTO readings r USING bench_stage s"
            " ON r.sensor_id = s.sensor_id AND r.time = s.time"
            f" WHEN NOT MATCHED THEN INSERT ({COLUMNS})"
            " VALUES (s.time, s.sensor_id, s.unit_id, s.value, s.quality, s.ingest_time)"
        )


def _timestamps(ns: np.ndarray) -> np.ndarray:
    return (np.asarray(ns, np.int64) // 1000).astype("datetime64[us]").astype(object)


def _rows(b: dict[str, Any]) -> tuple[list[Any], ...]:
    sensor = np.array(b["sensor_ids"], dtype=object)[b["sensor_code"]]
    unit = np.array(b["unit_ids"], dtype=object)[b["unit_code"]]
    return (
        [t.replace(tzinfo=UTC) for t in _timestamps(b["ts_ns"])],
        sensor.tolist(),
        unit.tolist(),
        b["value"].tolist(),
        b["quality"].tolist(),
        [t.replace(tzinfo=UTC) for t in _timestamps(b["ingest_ns"])],
    )


def unnest_insert(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO readings ({COLUMNS})"
        " SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::float8[],"
        " %s::int2[], %s::timestamptz[]) ON CONFLICT DO NOTHING",
        _rows(b),
        binary=True,
    )


def executemany(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO readings ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            list(zip(*_rows(b), strict=True)),
        )


def copy_direct(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        _copy(cur, "readings", _payload(b))


WRITERS: dict[str, Callable[[psycopg.Connection[Any], dict[str, Any]], None]] = {
    "write_path": write_path,
    "stage_upsert_rollups": stage_upsert_rollups,
    "stage_insert": stage_insert,
    "stage_merge": stage_merge,
    "unnest_insert": unnest_insert,
    "executemany": executemany,
    "copy_direct": copy_direct,
    "write_path_replay": write_path,
}


def measure(
    conn: psycopg.Connection[Any], method: str, batch: int, data: Data, n_rows: int
) -> dict[str, Any]:
    """Write ``n_rows`` in batches (one transaction each) into empty tables; rows/s."""
    conn.execute("TRUNCATE readings")
    if flavour_of(conn) == "postgres":
        conn.execute("TRUNCATE readings_1m, readings_1h")
    writer = WRITERS[method]
    n_rows = max(batch, n_rows - n_rows % batch)
    slices = [data.slice(lo, lo + batch) for lo in range(0, n_rows, batch)]
    if method == "write_path_replay":  # store once, time the replay
        for b in slices:
            with conn.transaction():
                writer(conn, b)
    elapsed = 0.0
    for b in slices:
        started = time.perf_counter()
        with conn.transaction():
            writer(conn, b)
        elapsed += time.perf_counter() - started
    stored = conn.execute("SELECT count(*) FROM readings").fetchone()
    if stored is None or stored[0] != n_rows:
        raise RuntimeError(f"{method}: {stored} rows stored, expected {n_rows}")
    return {
        "method": method,
        "batch": batch,
        "rows": n_rows,
        "seconds": round(elapsed, 4),
        "rows_per_s": round(n_rows / elapsed),
        "dedup": DEDUP[method],
    }


def run(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        database = settings.database.model_copy(update={"db_schema": schema})
        batches = args.batch or list(BATCHES)
        methods = args.method or list(METHODS)
        data = Data(max(args.rows, *batches), args.sensors)
        results = []
        migrate(database)
        try:
            with psycopg.connect(database.conninfo(), autocommit=True) as conn:
                flavour = flavour_of(conn)
                version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
                for method in methods:
                    for batch in batches:
                        rows = args.baseline_rows if method == "executemany" else args.rows
                        print(f"  {method} batch {batch} ...", file=sys.stderr, flush=True)
                        results.append(measure(conn, method, batch, data, rows))
        finally:
            with psycopg.connect(settings.database.conninfo(), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        summary = {
            "flavour": flavour,
            "server_version": version,
            "sensors": args.sensors,
            "results": results,
            "best_dedup_rows_per_s": max(r["rows_per_s"] for r in results if r["dedup"]),
            "write_path_rows_per_s": {
                r["batch"]: r["rows_per_s"] for r in results if r["method"] == "write_path"
            },
        }
        if args.json:
            print(json.dumps(summary))
        else:
            _print_table(summary, batches, methods)
        return 0

    return guarded(main)


def _print_table(summary: dict[str, Any], batches: list[int], methods: list[str]) -> None:
    print(f"readings write throughput, rows/s ({summary['flavour']} {summary['server_version']})")
    print(f"{'method':<20}{'dedup':>6}" + "".join(f"{b:>12,}" for b in batches))
    by = {(r["method"], r["batch"]): r["rows_per_s"] for r in summary["results"]}
    for m in methods:
        cells = "".join(f"{by.get((m, b), 0):>12,}" for b in batches)
        print(f"{m:<20}{'yes' if DEDUP[m] else 'NO':>6}{cells}")
