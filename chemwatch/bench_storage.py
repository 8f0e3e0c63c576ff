"""``chemwatch bench storage``: rows/s of the readings write path and its alternatives.

Every method runs against the configured PostgreSQL in a private, freshly migrated
schema (dropped afterwards), one transaction per batch as a detector worker does,
with batch sizes 1k/10k/100k. The data arrive in time order (every sensor, then the
next 10 s), as the detectors see them. Methods (all but the ``copy_*`` ones ignore
duplicates; on plain PostgreSQL the ``write_path*`` and ``*_rollups`` ones also
maintain readings_1m / readings_1h):

- ``write_path``: common.store.write_readings - map sensor ids to their integer keys
  (cached per connection), sort the batch by (key, time), binary COPY straight into
  readings_raw under a savepoint (the unique key rejects a batch
  with any stored row; the exact staged path then runs), rollups aggregated in numpy
  and folded in with one COPY + one upsert per rollup table.
- ``write_path_2x``: the same with two writers (connections, threads) at once, each with
  half of the sensors, as two detector workers on different Kafka partitions.
- ``write_path_deferred``: what a detector worker does by default (``defer_rollups``):
  each batch transaction COPYs its rows into readings_raw and its rollup partials into
  rollup_pending; the worker's RollupFolder folds them into readings_1m / readings_1h
  once a second on a connection of its own, beside the writes. Timed until the last
  fold has finished, so every rollup is done when the clock stops.
  ``write_path_deferred_2x``: the same with two writers and the one folder.
- ``write_path_upsert_rollups``: the write path's direct COPY with every rollup bucket
  upserted (INSERT ... ON CONFLICT DO UPDATE) instead of COPYing the new ones.
- ``previous_write_path``: the design before migration 0009, in time order: COPY into a
  temp stage, stage_remove_stored() (anti-join), the same COPY into readings under a
  savepoint, rollups by SQL GROUP BY over the stage.
- ``stage_upsert_rollups``: the exact fallback - COPY to staging, then INSERT ... ON
  CONFLICT DO NOTHING RETURNING folded into the rollups (ingest_raw_stage()).
- ``stage_insert``: COPY to staging + INSERT ON CONFLICT DO NOTHING, no rollups.
- ``stage_merge``: COPY to staging + MERGE ... WHEN NOT MATCHED THEN INSERT, no rollups.
- ``unnest_insert``: INSERT ... SELECT FROM unnest(<arrays>) ON CONFLICT DO NOTHING.
- ``executemany``: INSERT ... ON CONFLICT DO NOTHING row by row (psycopg pipelines it);
  the baseline, run on fewer rows because it is slow.
- ``copy_direct``: binary COPY straight into readings_raw in arrival (time) order, no rollups
  and NO duplicate protection (a replay fails the batch); ``copy_sorted``: the same
  with the batch sorted by (key, time) first. The ceilings.

Since migration 0040 the rows go to ``readings_raw`` (integer ``sensor_key``); every
method but ``write_path*`` uses keys the bench registered once at the start (as a
running writer has them cached), so they measure the writes, not the key lookups.
- ``write_path_replay``: the write path on a batch already stored (all duplicates).

``--repeat N`` runs N rounds (methods interleaved, so a burst of load elsewhere hits
all of them) and reports each cell's best round, and its median (``median_rows_per_s``
and every round's figure in ``rounds_rows_per_s`` of the JSON). ``--plot`` writes a bar chart (PNG).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from common import pgcopy, store
from common.cli import add_common_arguments
from common.migrate import flavour_of, migrate
from common.process import guarded, settings_from_args
from common.settings import BaseProcessSettings
from detectors.rollup_folder import RollupFolder

BATCHES = (1_000, 10_000, 100_000)
METHODS = (
    "write_path",
    "write_path_2x",
    "write_path_deferred",
    "write_path_deferred_2x",
    "write_path_upsert_rollups",
    "previous_write_path",
    "stage_upsert_rollups",
    "stage_insert",
    "stage_merge",
    "unnest_insert",
    "executemany",
    "copy_direct",
    "copy_sorted",
    "write_path_replay",
)
DEDUP = {m: not m.startswith("copy_") for m in METHODS}
DEFERRED = "write_path_deferred"
# the write_path methods that fold every row into the rollups once (checked after each cell)
ROLLUPS_CHECKED = ("write_path", "write_path_2x", "write_path_deferred", "write_path_deferred_2x")
DEFAULT_PLOT = Path("reports/bench_storage.png")
COLUMNS = "time, sensor_key, quality, value, ingest_time"  # readings_raw (migration 0040)
TEXT_COLUMNS = "time, sensor_id, unit_id, value, quality, ingest_time"
KEYS: dict[str, int] = {}  # sensor id -> sensor_key, registered once per run


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
    p.add_argument("--repeat", type=int, default=1, help="rounds; each cell reports its best")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--plot",
        type=Path,
        default=DEFAULT_PLOT,
        help=f"bar chart of rows/s per method and batch size (PNG; default {DEFAULT_PLOT})",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the chart")
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
        self.sensor_units = [self.unit_ids[i // 10 % len(self.unit_ids)] for i in range(n_sensors)]
        start = (time.time_ns() // 60_000_000_000 - 24 * 60) * 60_000_000_000
        self.ts = start + (step // n_sensors) * 10_000_000_000
        self.ingest = self.ts + 50_000_000
        self.value = rng.normal(50.0, 5.0, n_rows)
        self.quality = np.zeros(n_rows, np.int16)

    def slice(self, lo: int, hi: int) -> dict[str, Any]:
        """Rows lo..hi as write_readings() takes them."""
        return self.take(np.arange(lo, hi))

    def take(self, rows: np.ndarray) -> dict[str, Any]:
        """The given rows as write_readings() takes them."""
        sensors, codes = np.unique(self.sensor[rows], return_inverse=True)
        units, ucodes = np.unique(self.unit[rows], return_inverse=True)
        return {
            "sensor_ids": [self.sensor_ids[i] for i in sensors],
            "sensor_code": codes,
            "unit_ids": [self.unit_ids[i] for i in units],
            "unit_code": ucodes,
            "ts_ns": self.ts[rows],
            "ingest_ns": self.ingest[rows],
            "value": self.value[rows],
            "quality": self.quality[rows],
        }

    def halves(self, n_rows: int, batch: int) -> list[list[dict[str, Any]]]:
        """Two writers' batches: the first n_rows split by sensor parity, in time order."""
        rows = np.arange(n_rows)
        return [
            [self.take(part[lo : lo + batch]) for lo in range(0, len(part), batch)]
            for part in (rows[self.sensor[rows] % 2 == k] for k in (0, 1))
        ]


def _keys(b: dict[str, Any]) -> np.ndarray:
    """Each row's sensor key (the bench registers its sensors once, see ``run``)."""
    return np.asarray(np.array([KEYS[s] for s in b["sensor_ids"]], np.int32)[b["sensor_code"]])


def _payload(b: dict[str, Any]) -> bytes:
    """The binary COPY payload of readings_raw rows (keys, not names)."""
    return store.raw_payload(b["ts_ns"], _keys(b), b["quality"], b["value"], b["ingest_ns"])


def _text_payload(b: dict[str, Any]) -> bytes:
    """The payload of the text-keyed stage (readings_stage, LIKE the readings view)."""
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


def _copy(cur: psycopg.Cursor[Any], table: str, payload: bytes, columns: str = COLUMNS) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(payload)


def _stage(cur: psycopg.Cursor[Any], b: dict[str, Any]) -> None:
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bench_stage (LIKE readings_raw INCLUDING DEFAULTS)"
        " ON COMMIT DELETE ROWS"
    )
    _copy(cur, "bench_stage", _payload(b))


def write_path(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    store.write_readings(conn, **b)


def write_path_upsert_rollups(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    """The direct path (fresh rows only) with all rollup buckets upserted."""
    b = _key_sorted(b)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ensure_time_partitions(to_timestamp(%s), to_timestamp(%s))",
            (int(b["ts_ns"].min()) / 1e9, int(b["ts_ns"].max()) / 1e9),
        )
        _copy(cur, "readings_raw", _payload(b))
        store.fold_rollups(cur, _keys(b), b["ts_ns"], b["value"], copy_new=False)


def previous_write_path(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    """The write path before 0009 (its 0007 functions, on the text stage since 0040)."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS readings_stage (LIKE readings INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        _copy(cur, "readings_stage", _text_payload(b), TEXT_COLUMNS)
        row = cur.execute("SELECT stage_remove_stored()").fetchone()
        if row is None or row[0] != 0:
            raise RuntimeError("previous_write_path: the bench writes fresh rows only")
        _copy(cur, "readings_raw", _payload(b))
        cur.execute("SELECT rollup_staged_readings()")
        cur.execute("TRUNCATE readings_stage")


def stage_upsert_rollups(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    """The write path's exact fallback: COPY to raw_stage, ingest_raw_stage()."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS raw_stage (LIKE readings_raw INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        _copy(cur, "raw_stage", _payload(b))
        cur.execute("SELECT ingest_raw_stage()")
        cur.execute("TRUNCATE raw_stage")


def stage_insert(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        _stage(cur, b)
        cur.execute("INSERT INTO readings_raw SELECT * FROM bench_stage ON CONFLICT DO NOTHING")


def stage_merge(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        _stage(cur, b)
        cur.execute(
            "MERGE INTO readings_raw r USING bench_stage s"
            " ON r.sensor_key = s.sensor_key AND r.time = s.time"
            f" WHEN NOT MATCHED THEN INSERT ({COLUMNS})"
            " VALUES (s.time, s.sensor_key, s.quality, s.value, s.ingest_time)"
        )


def _timestamps(ns: np.ndarray) -> np.ndarray:
    return (np.asarray(ns, np.int64) // 1000).astype("datetime64[us]").astype(object)


def _rows(b: dict[str, Any]) -> tuple[list[Any], ...]:
    return (
        [t.replace(tzinfo=UTC) for t in _timestamps(b["ts_ns"])],
        _keys(b).tolist(),
        b["quality"].tolist(),
        b["value"].tolist(),
        [t.replace(tzinfo=UTC) for t in _timestamps(b["ingest_ns"])],
    )


def unnest_insert(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO readings_raw ({COLUMNS})"
        " SELECT * FROM unnest(%s::timestamptz[], %s::int4[], %s::int2[], %s::float8[],"
        " %s::timestamptz[]) ON CONFLICT DO NOTHING",
        _rows(b),
        binary=True,
    )


def executemany(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO readings_raw ({COLUMNS}) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            list(zip(*_rows(b), strict=True)),
        )


def copy_direct(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        _copy(cur, "readings_raw", _payload(b))


def copy_sorted(conn: psycopg.Connection[Any], b: dict[str, Any]) -> None:
    copy_direct(conn, _key_sorted(b))


def _key_sorted(b: dict[str, Any]) -> dict[str, Any]:
    order = np.lexsort((b["ts_ns"], _keys(b)))
    per_row = ("sensor_code", "unit_code", "ts_ns", "ingest_ns", "value", "quality")
    return {k: (v[order] if k in per_row else v) for k, v in b.items()}


WRITERS: dict[str, Callable[[psycopg.Connection[Any], dict[str, Any]], None]] = {
    "write_path": write_path,
    "write_path_2x": write_path,
    "write_path_deferred": write_path,
    "write_path_deferred_2x": write_path,
    "write_path_upsert_rollups": write_path_upsert_rollups,
    "previous_write_path": previous_write_path,
    "stage_upsert_rollups": stage_upsert_rollups,
    "stage_insert": stage_insert,
    "stage_merge": stage_merge,
    "unnest_insert": unnest_insert,
    "executemany": executemany,
    "copy_direct": copy_direct,
    "copy_sorted": copy_sorted,
    "write_path_replay": write_path,
}


def measure(
    conn: psycopg.Connection[Any],
    method: str,
    batch: int,
    data: Data,
    n_rows: int,
    conninfo: str,
) -> dict[str, Any]:
    """Write ``n_rows`` in batches (one transaction each) into empty tables; rows/s."""
    conn.execute("TRUNCATE readings_raw")  # sensor_keys stay: a running writer knows them
    store.forget_writer_state(conn)  # its newest rollup buckets are gone with the tables
    if flavour_of(conn) == "postgres":
        conn.execute("TRUNCATE readings_1m_raw, readings_1h_raw, rollup_pending")
    writer = WRITERS[method]
    n_rows = max(batch, n_rows - n_rows % batch)
    if method in ("write_path_2x", "write_path_deferred_2x"):
        elapsed = _two_writers(conninfo, data.halves(n_rows, batch), method.startswith(DEFERRED))
    elif method == "write_path_deferred":
        slices = [data.slice(lo, lo + batch) for lo in range(0, n_rows, batch)]
        elapsed = _deferred(conninfo, [(conn, slices)])
    else:
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
    if method in ROLLUPS_CHECKED:
        _check_rollups(conn, method, n_rows)
    return {
        "method": method,
        "batch": batch,
        "rows": n_rows,
        "seconds": round(elapsed, 4),
        "rows_per_s": round(n_rows / elapsed),
        "dedup": DEDUP[method],
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _two_writers(conninfo: str, parts: list[list[dict[str, Any]]], defer: bool) -> float:
    """Wall-clock seconds for two connections writing their batches concurrently."""
    conns = [psycopg.connect(conninfo, autocommit=True) for _ in parts]
    try:
        if defer:
            return _deferred(conninfo, list(zip(conns, parts, strict=True)))
        return _concurrently(list(zip(conns, parts, strict=True)), defer=False)
    finally:
        for c in conns:
            c.close()


def _concurrently(
    writers: list[tuple[psycopg.Connection[Any], list[dict[str, Any]]]], defer: bool
) -> float:
    """Wall-clock seconds for the writers (one thread each) to write their batches."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(writers) + 1)

    def work(conn: psycopg.Connection[Any], batches: list[dict[str, Any]]) -> None:
        start.wait()
        try:
            for b in batches:
                with conn.transaction():
                    store.write_readings(conn, **b, defer_rollups=defer)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=work, args=w, daemon=True) for w in writers]
    for t in threads:
        t.start()
    start.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"writer failed: {errors[0]!r}") from errors[0]
    return elapsed


def _deferred(
    conninfo: str, writers: list[tuple[psycopg.Connection[Any], list[dict[str, Any]]]]
) -> float:
    """The writers with deferred rollups while a RollupFolder folds once a second, as
    in a detector worker; wall-clock seconds until the last fold is done."""
    folder = RollupFolder(conninfo)
    done = threading.Event()

    def fold_every_second() -> None:
        while not done.wait(1.0):
            folder.kick()

    ticker = threading.Thread(target=fold_every_second, daemon=True)
    try:
        started = time.perf_counter()
        ticker.start()
        _concurrently(writers, defer=True)
        done.set()
        ticker.join()
        folder.wait()
        folder.kick()  # what the last batches left pending
        folder.wait()
        total = time.perf_counter() - started
    finally:
        done.set()
        folder.close()
    return total


def _check_rollups(conn: psycopg.Connection[Any], method: str, n_rows: int) -> None:
    """Every row counted once in each rollup table (plain PostgreSQL), none pending."""
    if flavour_of(conn) != "postgres":
        return
    for table in ("readings_1m", "readings_1h"):
        row = conn.execute(f"SELECT coalesce(sum(samples), 0) FROM {table}").fetchone()
        if row is None or int(row[0]) != n_rows:
            raise RuntimeError(f"{method}: {table} counts {row} readings, expected {n_rows}")
    row = conn.execute("SELECT count(*) FROM rollup_pending").fetchone()
    if row is None or int(row[0]) != 0:
        raise RuntimeError(f"{method}: {row} rollup rows still pending")


def run(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        database = settings.database.model_copy(update={"db_schema": schema})
        batches = args.batch or list(BATCHES)
        methods = args.method or list(METHODS)
        data = Data(max(args.rows, *batches), args.sensors)
        best: dict[tuple[str, int], dict[str, Any]] = {}
        rounds: dict[tuple[str, int], list[int]] = {}
        load_before = round(os.getloadavg()[0], 2)
        migrate(database)
        try:
            with psycopg.connect(database.conninfo(), autocommit=True) as conn:
                flavour = flavour_of(conn)
                version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
                KEYS.update(
                    conn.execute(
                        "SELECT sensor_id, sensor_key FROM sensor_keys_for(%s, %s)",
                        (data.sensor_ids, data.sensor_units),
                    ).fetchall()
                )
                for round_ in range(1, max(1, args.repeat) + 1):
                    for method in methods:
                        for batch in batches:
                            rows = args.baseline_rows if method == "executemany" else args.rows
                            print(
                                f"  round {round_}/{args.repeat}: {method} batch {batch} ...",
                                file=sys.stderr,
                                flush=True,
                            )
                            r = measure(conn, method, batch, data, rows, database.conninfo())
                            rounds.setdefault((method, batch), []).append(r["rows_per_s"])
                            old = best.get((method, batch))
                            if old is None or r["rows_per_s"] > old["rows_per_s"]:
                                best[(method, batch)] = r
        finally:
            with psycopg.connect(settings.database.conninfo(), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        results = [
            best[(m, b)]
            | {
                "rounds_rows_per_s": rounds[(m, b)],
                "median_rows_per_s": round(float(np.median(rounds[(m, b)]))),
            }
            for m in methods
            for b in batches
        ]
        summary = {
            "flavour": flavour,
            "server_version": version,
            "sensors": args.sensors,
            "repeat": max(1, args.repeat),
            "load_average_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
            "results": results,
            "best_dedup_rows_per_s": max(
                (r["rows_per_s"] for r in results if r["dedup"]), default=0
            ),
            "write_path_rows_per_s": {
                r["batch"]: r["rows_per_s"] for r in results if r["method"] == "write_path"
            },
        }
        if not args.no_plot:
            summary["plot"] = str(plot(summary, batches, methods, args.plot))
            print(f"  chart: {summary['plot']}", file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(summary))
        else:
            _print_table(summary, batches, methods)
        return 0

    return guarded(main)


def _print_table(summary: dict[str, Any], batches: list[int], methods: list[str]) -> None:
    load = summary["load_average_1m"]
    print(
        f"readings write throughput, rows/s ({summary['flavour']} {summary['server_version']};"
        f" best of {summary['repeat']}; load average {load['before']} -> {load['after']})"
    )
    print(f"{'method':<28}{'dedup':>6}" + "".join(f"{b:>12,}" for b in batches))
    by = {(r["method"], r["batch"]): r for r in summary["results"]}
    for m in methods:
        cells = "".join(f"{by[(m, b)]['rows_per_s']:>12,}" for b in batches)
        print(f"{m:<28}{'yes' if DEDUP[m] else 'NO':>6}{cells}")
    if summary["repeat"] > 1:
        print(f"median of {summary['repeat']} rounds:")
        for m in methods:
            cells = "".join(f"{by[(m, b)]['median_rows_per_s']:>12,}" for b in batches)
            print(f"{m:<28}{'yes' if DEDUP[m] else 'NO':>6}{cells}")


def plot(summary: dict[str, Any], batches: list[int], methods: list[str], path: Path) -> Path:
    """A grouped bar chart (rows/s per method, one bar per batch size) as PNG."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r["method"], r["batch"]): r["rows_per_s"] for r in summary["results"]}
    width = 0.8 / len(batches)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(methods) + 2), 4.5))
    x = np.arange(len(methods))
    for k, b in enumerate(batches):
        ax.bar(x + k * width, [by.get((m, b), 0) for m in methods], width, label=f"batch {b:,}")
    ax.axhline(300_000, color="black", linestyle="--", linewidth=1, label="goal 300k rows/s")
    ax.set_xticks(x + width * (len(batches) - 1) / 2)
    ax.set_xticklabels(
        [m if DEDUP[m] else f"{m}\n(no dedup)" for m in methods], rotation=30, ha="right"
    )
    ax.set_ylabel("rows/s")
    load = summary["load_average_1m"]
    ax.set_title(
        f"readings write throughput ({summary['flavour']} {summary['server_version'].split()[0]},"
        f" best of {summary['repeat']}, load {load['before']}-{load['after']})",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
