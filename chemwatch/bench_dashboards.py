"""``chemwatch bench dashboards``: how fast every dashboard query answers on a big history.

Loads a synthetic fleet into a private schema of the configured PostgreSQL (plain
flavour; dropped afterwards unless ``--keep``): sites x units x sensors in the
registry, ``--days`` of hourly rollups, ``--minute-days`` of minute rollups, the last
``--raw-hours`` of raw readings through the real write path, alarms and a journal
(about two activations per alarmed sensor and day). Rollups are generated in SQL
rather than from raw rows, so a month of a large fleet loads in minutes. Then every
SQL query of every dashboard runs for a 7-day range (template variables at "All",
the sensor variable at one sensor), a warm-up run plus ``--repeat`` timed runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from chemwatch import grafana
from common import store
from common.cli import add_common_arguments
from common.migrate import flavour_of, migrate
from common.process import guarded, settings_from_args
from common.settings import BaseProcessSettings

GOAL_MS = 200.0


def add_parser(areas: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bench dashboards``."""
    p = areas.add_parser("dashboards", help="dashboard query latency", description=__doc__)
    add_common_arguments(p)
    p.add_argument("--sensors", type=int, default=1000)
    p.add_argument("--days", type=int, default=30, help="days of hourly rollups")
    p.add_argument("--minute-days", type=float, default=7, help="days of minute rollups")
    p.add_argument("--raw-hours", type=float, default=6, help="hours of raw readings (10 s)")
    p.add_argument("--range-days", type=float, default=7, help="dashboard time range")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the schema (prints its name)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


REGISTRY = """
INSERT INTO sites (site_id, name, enterprise, region)
SELECT 'site-' || s, 'Site ' || s, 'Bench Co.', 'region-' || (s %% 3)
  FROM generate_series(0, %(sites)s - 1) s;
INSERT INTO units (unit_id, site_id, name, kind, area)
SELECT 'unit-' || u, 'site-' || (u %% %(sites)s), 'Unit ' || u, 'storage_tank',
       'console-' || (u %% 7)
  FROM generate_series(0, %(units)s - 1) u;
INSERT INTO sensors (sensor_id, unit_id, site_id, kind, eng_unit, range_low, range_high,
                     limit_h, limit_hh, interval_s)
SELECT 'sensor-' || lpad(i::text, 6, '0'), 'unit-' || (i %% %(units)s),
       'site-' || ((i %% %(units)s) %% %(sites)s), 'pressure', 'bar(g)', 0, 25, 14, 15.5, 10
  FROM generate_series(0, %(sensors)s - 1) i;
"""

# The rollup tables are keyed by sensor_key behind the readings_1m / readings_1h views
# (migration 0042); the bench's sensors get their keys first (KEYS).
KEYS = """
SELECT count(*) FROM sensor_keys_for(
    (SELECT array_agg(sensor_id ORDER BY sensor_id) FROM sensors),
    (SELECT array_agg(unit_id ORDER BY sensor_id) FROM sensors))
"""
ROLLUP = """
INSERT INTO {table} (bucket, sensor_key, samples, value_sum, value_min, value_max,
                     value_last, last_time)
SELECT b, k.sensor_key, %(per)s, %(per)s * 10.0, 8.0, 12.0, 10.0,
       b + %(width)s::interval - interval '10 seconds'
  FROM generate_series(%(start)s::timestamptz, %(stop)s::timestamptz, %(width)s) b,
       sensors s JOIN sensor_keys k USING (sensor_id)
 ORDER BY b, k.sensor_key
"""

ALARMS = """
INSERT INTO alarms (alarm_id, site_id, unit_id, sensor_id, condition, state, active, severity,
                    value, threshold, explanation, occurrence_id, activated_at, updated_at)
SELECT s.sensor_id || ':hi', s.site_id, s.unit_id, s.sensor_id, 'hi',
       (ARRAY['UNACK', 'ACKED', 'RTNUN', 'NORMAL'])[1 + i %% 4], i %% 4 < 2,
       (ARRAY['low', 'low', 'low', 'medium', 'high', 'critical'])[1 + i %% 6], 15, 14, 'bench',
       md5(s.sensor_id)::uuid, now() - (i %% 48) * interval '1 hour', now()
  FROM (SELECT *, row_number() OVER (ORDER BY sensor_id) AS i FROM sensors) s
 WHERE i %% 20 = 0;
UPDATE alarms SET priority = severity;  -- the dashboards show alerting's priority
INSERT INTO alarm_journal (time, alarm_id, occurrence_id, action, from_state, to_state, username)
SELECT now() - random() * %(days)s * interval '1 day', a.alarm_id, gen_random_uuid(), 'active',
       'NORMAL', 'UNACK', 'system'
  FROM alarms a, generate_series(1, %(days)s * 2) k;
INSERT INTO alarm_journal (time, alarm_id, occurrence_id, action, from_state, to_state, username)
SELECT time + random() * interval '20 minutes', alarm_id, occurrence_id, 'acknowledge', 'UNACK',
       'ACKED', 'operator'
  FROM alarm_journal WHERE action = 'active';
INSERT INTO anomalies (event_id, occurrence_id, time, activated_at, state, site_id, unit_id,
                       sensor_id, condition, severity, value, threshold, detector,
                       explanation, payload)
SELECT gen_random_uuid(), gen_random_uuid(), j.time, j.time, 'active', a.site_id, a.unit_id,
       a.sensor_id, 'hi', a.severity, 15, 14, 'limits', 'bench', '{}'::jsonb
  FROM alarm_journal j JOIN alarms a ON a.alarm_id = j.alarm_id WHERE j.action = 'active';
"""


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def load(conn: psycopg.Connection[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Fill the schema; return what was loaded and how long it took."""
    started = time.perf_counter()
    units = max(1, args.sensors // 10)
    sites = max(1, units // 10)
    for statement in REGISTRY.split(";")[:-1]:  # one statement per execute with parameters
        conn.execute(statement, {"sites": sites, "units": units, "sensors": args.sensors})
    now = datetime.now(UTC)
    raw_start = now - timedelta(hours=args.raw_hours)
    hour_end = raw_start.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    minute_end = raw_start.replace(second=0, microsecond=0) - timedelta(minutes=1)
    conn.execute(KEYS)
    plans = [
        ("readings_1h_raw", hour_end - timedelta(days=args.days), hour_end, "1 hour", 360),
        (
            "readings_1m_raw",
            minute_end - timedelta(days=args.minute_days),
            minute_end,
            "1 minute",
            6,
        ),
    ]
    conn.execute("SELECT ensure_time_partitions(%s, %s)", (plans[0][1], now + timedelta(hours=1)))
    ids = [r[0] for r in conn.execute("SELECT sensor_id FROM sensors ORDER BY 1")]
    # In time order, a window at a time, as the write path would have stored them
    # (so the physical layout, and BRIN, look like a real history).
    for table, start, stop, width, per in plans:
        step = timedelta(days=1) if width == "1 hour" else timedelta(hours=2)
        window = start
        while window <= stop:
            end = min(window + step - timedelta(minutes=1), stop)
            with conn.transaction():
                conn.execute(
                    sql.SQL(ROLLUP).format(table=sql.Identifier(table)),
                    {"per": per, "width": width, "start": window, "stop": end},
                )
            window += step
            _progress(f"{table}: up to {min(window, stop):%Y-%m-%d %H:%M}")
    _load_raw(conn, ids, raw_start, now)
    for statement in ALARMS.split(";")[:-1]:
        conn.execute(statement, {"days": args.days})
    for table in (
        "readings_raw",  # readings is a view on it and sensor_keys (migration 0040)
        "sensor_keys",
        "readings_1m_raw",  # behind the readings_1m / readings_1h views (migration 0042)
        "readings_1h_raw",
        "alarms",
        "alarm_journal",
        "anomalies",
        "sensors",
        "units",
        "sites",
    ):
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    counts = {
        t: _scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t)))
        for t in ("readings", "readings_1m", "readings_1h", "alarm_journal")
    }
    size = conn.execute(
        "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid)))"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
    ).fetchone()[0]  # type: ignore[index]
    return {"rows": counts, "size": size, "load_s": round(time.perf_counter() - started, 1)}


def _scalar(conn: psycopg.Connection[Any], query: sql.Composed) -> Any:
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def _load_raw(
    conn: psycopg.Connection[Any], ids: list[str], start: datetime, end: datetime
) -> None:
    """Raw readings every 10 s through the real write path, in 100k-row batches."""
    steps = np.arange(int(start.timestamp()), int(end.timestamp()), 10, dtype=np.int64)
    units = {r[0]: r[1] for r in conn.execute("SELECT sensor_id, unit_id FROM sensors")}
    unit_names = sorted(set(units.values()))
    unit_code = np.searchsorted(unit_names, [units[s] for s in ids])
    per_batch = max(1, 100_000 // len(ids))
    rng = np.random.default_rng(3)
    for i in range(0, len(steps), per_batch):
        ts = np.repeat(steps[i : i + per_batch], len(ids)) * 1_000_000_000
        codes = np.tile(np.arange(len(ids)), len(steps[i : i + per_batch]))
        with conn.transaction():
            store.write_readings(
                conn,
                ids,
                codes,
                unit_names,
                unit_code[codes],
                ts,
                ts,
                rng.normal(10, 1, len(ts)),
                np.zeros(len(ts), np.int16),
            )
        _progress(f"raw readings: {min(i + per_batch, len(steps))}/{len(steps)} time steps")


def measure(conn: psycopg.Connection[Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every dashboard SQL query over the last ``--range-days``."""
    now = datetime.now(UTC)
    time_from = now - timedelta(days=args.range_days)
    out = []

    def run_sql(text: str) -> list[tuple[Any, ...]]:
        return conn.execute(text.encode()).fetchall()

    for path in grafana.dashboard_files():
        values, quoted = grafana.resolve_variables(path, time_from, now, run_sql)
        if values.get("sensor"):
            values["sensor"] = values["sensor"][:1]  # a detail view looks at one sensor
        for q in grafana.queries(path):
            if q.language != "sql":
                continue
            text = grafana.expand(q.text, time_from, now, values, quoted).encode()
            conn.execute(text).fetchall()  # warm-up
            times, n_rows = [], 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                n_rows = len(conn.execute(text).fetchall())
                times.append((time.perf_counter() - started) * 1000)
            out.append(
                {
                    "dashboard": q.dashboard,
                    "panel": q.where,
                    "ref": q.ref,
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                    "rows": n_rows,
                }
            )
            _progress(f"{q.name}: {out[-1]['median_ms']} ms")
    return out


def run(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        schema = f"bench_dash_{uuid.uuid4().hex[:8]}"
        database = settings.database.model_copy(update={"db_schema": schema})
        migrate(database)
        try:
            with psycopg.connect(database.conninfo(), autocommit=True) as conn:
                if flavour_of(conn) != "postgres":
                    print(
                        "error: this benchmark loads rollup tables directly; it needs the"
                        " plain-PostgreSQL flavour",
                        file=sys.stderr,
                    )
                    return 2
                loaded = load(conn, args)
                results = measure(conn, args)
        finally:
            if not args.keep:
                with psycopg.connect(settings.database.conninfo(), autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        summary = {
            "schema": schema if args.keep else None,
            "sensors": args.sensors,
            "days": args.days,
            "minute_days": args.minute_days,
            "raw_hours": args.raw_hours,
            "range_days": args.range_days,
            **loaded,
            "goal_ms": GOAL_MS,
            "over_goal": [
                f"{r['dashboard']} / {r['panel']}" for r in results if r["median_ms"] > GOAL_MS
            ],
            "results": results,
        }
        if args.json:
            print(json.dumps(summary))
        else:
            _print(summary)
        return 0

    return guarded(main)


def _print(s: dict[str, Any]) -> None:
    print(
        f"dashboard queries, {s['range_days']:g}-day range: {s['sensors']} sensors,"
        f" {s['days']} days of 1h rollups, {s['minute_days']:g} days of 1m rollups,"
        f" {s['raw_hours']:g} h raw; rows {s['rows']}, {s['size']}, loaded in {s['load_s']} s"
    )
    print(f"{'dashboard / panel':<70}{'median ms':>10}{'max ms':>9}{'rows':>7}")
    for r in s["results"]:
        name = f"{r['dashboard']} / {r['panel']} / {r['ref']}"[:69]
        print(f"{name:<70}{r['median_ms']:>10}{r['max_ms']:>9}{r['rows']:>7}")
    over = s["over_goal"]
    print(f"{len(over)} queries above {s['goal_ms']:g} ms" + (f": {over}" if over else ""))
