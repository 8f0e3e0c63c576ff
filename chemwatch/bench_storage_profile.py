"""Where the write path's time goes: ``python -m chemwatch.bench_storage_profile``.

A measurement aid for docs/storage.md, not part of the product. In a private, freshly
migrated schema it writes ``--batches`` batches of ``--batch`` rows the way
common.store.write_readings does, timing each step on the client (the server work of a
statement is inside its round trip), the WAL bytes each step generates, the commit,
and the Python share (payload build). It then times the same COPY into variants of the
readings table that each lack one cost (no primary key, not partitioned, unlogged),
to attribute the COPY time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from chemwatch.bench_storage import COLUMNS, KEYS, Data, _key_sorted, _payload
from common import store
from common.migrate import flavour_of, migrate
from common.settings import BaseProcessSettings, load_settings


def _lsn(cur: psycopg.Cursor[Any]) -> int:
    row = cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def _copy(cur: psycopg.Cursor[Any], table: str, payload: bytes) -> None:
    with cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(payload)


class Steps:
    """Accumulates seconds and WAL bytes per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.wal: dict[str, int] = {}

    def run(self, cur: psycopg.Cursor[Any], name: str, fn: Any) -> Any:
        before = _lsn(cur)
        started = time.perf_counter()
        out = fn()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        self.wal[name] = self.wal.get(name, 0) + _lsn(cur) - before
        return out


PROBE = "rollups: stored_rollup_key_buckets() probe"


def profile_write_path(
    conn: psycopg.Connection[Any], data: Data, batch: int, n: int, remember: bool = True
) -> dict[str, Any]:
    """The write path's steps (the direct path: no replays), n batches.

    Mirrors common.store.write_readings step by step (its private helpers), so that
    each round trip is timed on its own.
    """
    steps = Steps()
    cache = store._CACHES.setdefault(conn, store._KeyCache())
    probe = store._stored_buckets  # wrapped to time the probe on its own

    def timed_probe(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return probe(*args)
        finally:
            steps.seconds[PROBE] = steps.seconds.get(PROBE, 0.0) + time.perf_counter() - started

    store._stored_buckets = timed_probe  # type: ignore[assignment]
    with conn.cursor() as cur:
        for k in range(n):
            b = data.slice(k * batch, (k + 1) * batch)
            cur.execute("BEGIN")
            lo, hi = int(b["ts_ns"].min()), int(b["ts_ns"].max())
            xact = steps.run(
                cur,
                "ensure_time_partitions() + key cache check",
                lambda lo=lo, hi=hi: store._prepare(cur, cache, lo, hi),
            )[1]
            started = time.perf_counter()
            key_of_code = store._sensor_keys(
                cur, cache, xact, b["sensor_ids"], np.asarray(b["sensor_code"], np.int64),
                b["unit_ids"], np.asarray(b["unit_code"], np.int64),
            )  # fmt: skip
            key = key_of_code[b["sensor_code"]]
            order = np.lexsort((b["ts_ns"], key))
            per_row = ("sensor_code", "unit_code", "ts_ns", "ingest_ns", "value", "quality")
            b = {k: (v[order] if k in per_row else v) for k, v in b.items()}
            payload = store.raw_payload(
                b["ts_ns"], key[order], b["quality"], b["value"], b["ingest_ns"]
            )
            steps.seconds["key map + sort + payload build (Python)"] = (
                steps.seconds.get("key map + sort + payload build (Python)", 0.0)
                + time.perf_counter()
                - started
            )
            steps.run(cur, "SAVEPOINT", lambda: cur.execute("SAVEPOINT direct"))
            steps.run(
                cur, "COPY into readings_raw", lambda p=payload: _copy(cur, "readings_raw", p)
            )
            steps.run(cur, "RELEASE", lambda: cur.execute("RELEASE direct"))
            probed = steps.seconds.get(PROBE, 0.0)
            steps.run(
                cur,
                "rollups: numpy + COPY + fold_staged_rollups()",
                lambda b=b, key=key[order]: store.fold_rollups(
                    cur, key, b["ts_ns"], b["value"], state=cache if remember else None
                ),
            )
            # the probe ran inside that step (timed by the wrapper): count it on its own
            steps.seconds["rollups: numpy + COPY + fold_staged_rollups()"] -= (
                steps.seconds.get(PROBE, 0.0) - probed
            )
            steps.run(cur, "COMMIT", lambda: cur.execute("COMMIT"))
    store._stored_buckets = probe
    rows = batch * n
    total = sum(steps.seconds.values())
    return {
        "rows": rows,
        "seconds": round(total, 3),
        "rows_per_s": round(rows / total),
        "steps": {
            name: {
                "seconds": round(s, 3),
                "share_pct": round(100 * s / total, 1),
                "wal_bytes_per_row": round(steps.wal.get(name, 0) / rows, 1),
            }
            for name, s in steps.seconds.items()
        },
    }


VARIANTS = {
    "readings_raw (partitioned, primary key, BRIN), time order": None,
    "readings_raw, batch sorted by (key, time)": None,
    "partitioned like readings_raw, no indexes": (
        "CREATE TABLE v_noidx (LIKE readings_raw) PARTITION BY RANGE (time);"
        " CREATE TABLE v_noidx_default PARTITION OF v_noidx DEFAULT"
    ),
    "plain table with the primary key": (
        "CREATE TABLE v_pk (LIKE readings_raw); ALTER TABLE v_pk ADD PRIMARY KEY (sensor_key, time)"
    ),
    "plain table, no indexes": "CREATE TABLE v_plain (LIKE readings_raw)",
    "unlogged plain table, no indexes": "CREATE UNLOGGED TABLE v_unlogged (LIKE readings_raw)",
}


def profile_copy_variants(
    conn: psycopg.Connection[Any], data: Data, batch: int, n: int
) -> dict[str, Any]:
    """COPY of the same batches into tables that each lack one of readings' costs."""
    out = {}
    with conn.cursor() as cur:
        for name, ddl in VARIANTS.items():
            if ddl is None:
                table = "readings_raw"
                cur.execute("TRUNCATE readings_raw")
            else:
                cur.execute(ddl)
                table = ddl.split()[2] if not ddl.startswith("CREATE UNLOGGED") else "v_unlogged"
            seconds, wal = 0.0, 0
            for k in range(n):
                b = data.slice(k * batch, (k + 1) * batch)
                payload = _payload(_key_sorted(b) if "sorted" in name else b)
                before = _lsn(cur)
                started = time.perf_counter()
                cur.execute("BEGIN")
                _copy(cur, table, payload)
                cur.execute("COMMIT")
                seconds += time.perf_counter() - started
                wal += _lsn(cur) - before
            out[name] = {
                "rows_per_s": round(batch * n / seconds),
                "wal_bytes_per_row": round(wal / (batch * n), 1),
            }
    return out


def main() -> int:
    """Run both profiles in a throw-away schema and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--sensors", type=int, default=1_000)
    parser.add_argument(
        "--probe-always",
        action="store_true",
        help="probe the rollup tables every batch (the write path before the writer"
        " remembered its newest buckets)",
    )
    args = parser.parse_args()
    settings = load_settings(BaseProcessSettings)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    database = settings.database.model_copy(update={"db_schema": schema})
    data = Data(args.batch * args.batches, args.sensors)
    migrate(database)
    try:
        with psycopg.connect(database.conninfo(), autocommit=True) as conn:
            server = {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("server_version", "synchronous_commit", "wal_level", "shared_buffers")
            }
            KEYS.update(
                conn.execute(
                    "SELECT sensor_id, sensor_key FROM sensor_keys_for(%s, %s)",
                    (data.sensor_ids, data.sensor_units),
                ).fetchall()
            )
            result = {
                "flavour": flavour_of(conn),
                "server": server,
                "load_average_1m": round(os.getloadavg()[0], 1),
                "batch": args.batch,
                "remember_buckets": not args.probe_always,
                "write_path": profile_write_path(
                    conn, data, args.batch, args.batches, remember=not args.probe_always
                ),
                "copy_variants": profile_copy_variants(conn, data, args.batch, args.batches),
            }
    finally:
        with psycopg.connect(settings.database.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
