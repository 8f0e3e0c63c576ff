"""Every Grafana dashboard query is run: SQL on PostgreSQL and on TimescaleDB, PromQL by promtool.

SQL queries (panels, annotations, variables) are extracted from the provisioned JSON,
Grafana's macros and template variables are expanded as the data source does, and each
runs against a schema loaded with a sample plant history (tests/fixtures/sample_data.py)
on the real PostgreSQL and on PGlite + TimescaleDB; each must succeed, return rows and
have the shape its panel format needs. PromQL must parse (promtool) and name only
metrics that the running services export.
"""

from __future__ import annotations

import decimal
import itertools
import shutil
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from chemwatch import grafana
from chemwatch.ports import free_port
from common.migrate import available
from common.registry import load_registry
from tests.fixtures.alarm_history import dump_sql, write_alarm_history
from tests.fixtures.pglite import run_pglite
from tests.fixtures.processes import ServiceFactory, wait_until
from tests.fixtures.sample_data import ANOMALIES, TIMESCALE_REFRESH, sample_data_sql
from tests.fixtures.services import ROOT

REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
# Ranges: the default (1m rollup), below 6 h (raw readings), beyond 7 days (1h rollup).
RANGES = {"2d": timedelta(days=2), "3h": timedelta(hours=3), "10d": timedelta(days=10)}
# The bucket spacing each range must give in the rollup-by-range panel.
SPACING = {"3h": (1, 59), "2d": (300, 300), "10d": (3600, 3600)}
VALUE_PANEL = "Value with limits"
NUMBER = (int, float, decimal.Decimal, type(None))


def sql_queries() -> list[grafana.Query]:
    return [
        q
        for path in grafana.dashboard_files()
        for q in grafana.queries(path)
        if q.language == "sql"
    ]


def promql_queries() -> list[grafana.Query]:
    return [
        q
        for path in grafana.dashboard_files()
        for q in grafana.queries(path)
        if q.language == "promql"
    ]


# --------------------------------------------------------------------------- static


def test_dashboards_are_provisioned_with_unique_uids() -> None:
    files = grafana.dashboard_files()
    names = {p.stem for p in files}
    assert {
        "plant-overview",
        "sensor-detail",
        "alarms-kpi",
        "supervisor",
        "pipeline-health",
    } <= names
    uids = [grafana.load(p)["uid"] for p in files]
    assert len(uids) == len(set(uids))
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards/:{path}/:ro" in mounts
    for file in files:
        doc = grafana.load(file)
        names = [v["name"] for v in doc["templating"]["list"]]
        if file.stem != "pipeline-health":
            assert "site" in names, file.stem
        if file.stem in ("plant-overview", "sensor-detail", "alarms-kpi"):
            assert "unit" in names, file.stem
    assert "sensor" in [
        v["name"] for v in grafana.variables(ROOT / "deploy/grafana/dashboards/sensor-detail.json")
    ]


def test_every_sql_panel_is_extracted() -> None:
    queries = sql_queries()
    panels = {(q.dashboard, q.where) for q in queries}
    assert len(queries) >= 25
    assert ("sensor-detail", "annotation: Anomalies") in panels
    assert ("alarms-kpi", "Chattering alarms") in panels
    for q in queries:
        assert "$__timeGroup" not in q.text, f"{q.name}: use time_bucket, it works on both flavours"


def test_macro_expansion() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    text = grafana.expand(
        "SELECT 1 FROM r WHERE $__timeFilter(r.time) AND s IN ($sensor) AND d = $deadline"
        " AND $__timeTo()::timestamptz > $__timeFrom()::timestamptz"
        " AND step = $__interval_ms AND [[sensor]] = ${sensor}",
        t0,
        t0 + timedelta(hours=6),
        {"sensor": ["a", "b'c"], "deadline": ["5"]},
        {"sensor"},
    )
    assert text == (
        "SELECT 1 FROM r WHERE r.time BETWEEN '2026-11-01T00:00:00.000Z' AND"
        " '2026-11-01T06:00:00.000Z' AND s IN ('a','b''c') AND d = 5"
        " AND '2026-11-01T06:00:00.000Z'::timestamptz > '2026-11-01T00:00:00.000Z'::timestamptz"
        " AND step = 30000 AND 'a','b''c' = 'a','b''c'"
    )


# --------------------------------------------------------------------------- SQL


def load_sample(db: psycopg.Connection) -> None:
    """Registry and readings by SQL; alarms, journal, floods, incidents by alerting's code."""
    for script in sample_data_sql(REGISTRY):
        db.execute(script.encode())
    write_alarm_history(db, REGISTRY, datetime.now(UTC))
    db.execute(ANOMALIES.encode())


def expanded(
    db: psycopg.Connection, span: timedelta, now: datetime
) -> list[tuple[grafana.Query, str]]:
    """Every SQL query with macros and variables (all values) expanded."""
    out = []
    time_from = now - span

    def run(text: str) -> list[tuple[Any, ...]]:
        return db.execute(text.encode()).fetchall()

    for path in grafana.dashboard_files():
        values, quoted = grafana.resolve_variables(path, time_from, now, run)
        for q in grafana.queries(path):
            if q.language == "sql":
                out.append((q, grafana.expand(q.text, time_from, now, values, quoted)))
    return out


def check_shape(q: grafana.Query, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert columns, f"{q.name}: no columns"
    assert len(set(columns)) == len(columns), f"{q.name}: duplicate columns {columns}"
    if q.ref == "var":
        assert len(columns) == 1, f"{q.name}: a variable query returns one column"
    elif q.ref == "ann":
        assert {"time", "text"} <= set(columns), f"{q.name}: {columns}"
    elif q.format == "time_series":
        assert columns[0] == "time", f"{q.name}: first column must be time, got {columns}"
        numeric = [c for c in columns[1:] if c != "metric"]
        assert numeric, f"{q.name}: no value column"
        for row in rows[:50]:
            assert isinstance(row[0], datetime), f"{q.name}: time is {type(row[0])}"
            for col in numeric:
                value = row[columns.index(col)]
                assert isinstance(value, NUMBER), f"{q.name}: {col} is {type(value)}"


# Panels whose content the sample history determines (alerting opened incidents on both
# sites: a gas second-level pair on TK101/TK102's area and a reactor runaway on R501).
RISK_PANELS = ("Unit risk level (four colours)", "Site risk level (four colours)", "Regions")


def check_content(q: grafana.Query, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Beyond shape: the alerting-fed panels show what alerting wrote."""
    if q.where in RISK_PANELS:
        levels = {r[columns.index("risk_level")] for r in rows}
        assert levels <= {"blue", "yellow", "orange", "red"}, f"{q.name}: {levels}"
        assert levels - {"blue"}, f"{q.name}: every level is blue, the open incidents are missing"
    if q.where == "Open major-risk incidents":
        assert {r[columns.index("site")] for r in rows} == {"haibin-terminal", "jinghe-finechem"}
    if q.where == "Active alarms by priority":
        priorities = {r[columns.index("priority")] for r in rows}
        assert priorities <= {"critical", "high", "medium", "low"}, f"{q.name}: {priorities}"


@pytest.mark.integration
def test_every_sql_query_runs_on_postgresql(db: psycopg.Connection) -> None:
    load_sample(db)
    now = datetime.now(UTC)
    failures = []
    for range_name, span in RANGES.items():
        for q, text in expanded(db, span, now):
            try:
                cur = db.execute(text.encode())
                rows = cur.fetchall()
                columns = [c.name for c in cur.description or []]
                check_shape(q, columns, rows)
                if range_name == "2d":
                    assert rows, f"{q.name}: no rows from the sample data"
                    check_content(q, columns, rows)
                if q.where == VALUE_PANEL and q.ref == "A":
                    times = sorted({r[0] for r in rows})
                    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
                    lo, hi = SPACING[range_name]
                    assert gaps, f"{q.name} ({range_name}): no rows"
                    assert lo <= min(gaps) <= hi, f"{q.name} ({range_name}): spacing {min(gaps)}"
            except (AssertionError, psycopg.Error) as exc:
                failures.append(f"[{range_name}] {q.name}: {exc}\n{text}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.integration
def test_every_sql_query_runs_on_timescaledb(db: psycopg.Connection) -> None:
    """The same expanded queries on PGlite + TimescaleDB; same columns as on PostgreSQL."""
    load_sample(db)
    now = datetime.now(UTC) + timedelta(minutes=1)  # PGlite loads its data a bit later
    plan = []
    for range_name, span in RANGES.items():
        for q, text in expanded(db, span, now):
            cur = db.execute(text.encode())
            plan.append((f"[{range_name}] {q.name}", text, [c.name for c in cur.description]))
    setup = [t for _v, _n, t in available("timescale")]
    # the same rows as on PostgreSQL: alerting's tables and the anomalies are copied over
    setup += ["SELECT storage_maintain()", *sample_data_sql(REGISTRY), *dump_sql(db)]
    setup += TIMESCALE_REFRESH
    result = run_pglite(setup, [(name, text) for name, text, _c in plan], max_rows=1)
    assert result["timescaledb"], "TimescaleDB is not loaded in PGlite"
    failures = []
    for (name, text, columns), got in zip(plan, result["queries"], strict=True):
        if not got["ok"]:
            failures.append(f"{name}: {got['error']}\n{text}")
        elif got["fields"] != columns:
            failures.append(f"{name}: columns {got['fields']} != PostgreSQL's {columns}")
        elif name.startswith("[2d]") and got["row_count"] == 0:
            failures.append(f"{name}: no rows on TimescaleDB")
    assert not failures, "\n\n".join(failures)


# --------------------------------------------------------------------------- PromQL


def test_promql_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: `make promtool` installs the Debian package prometheus")
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    queries = promql_queries()
    assert len(queries) >= 10
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {
                        "record": f"chemwatch_dashboard_check_{i}",
                        "expr": grafana.expand(
                            q.text, t0, t0 + timedelta(hours=1), {}, set(), "promql"
                        ),
                    }
                    for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def exported(port: int) -> set[str]:
    """Metric and sample names a service serves on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def _has_samples(port: int, family: str) -> bool:
    """The service serves at least one sample of the metric family (labelled ones start empty)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return any(f.name == family and f.samples for f in text_string_to_metric_families(text))


def _serving(port: int) -> bool:
    try:
        return bool(exported(port))
    except OSError:
        return False


@pytest.mark.integration
def test_promql_names_only_metrics_the_services_export(service_factory: ServiceFactory) -> None:
    ports = {name: free_port() for name in ("ingest", "detectors", "alerting")}
    for name, port in ports.items():
        service_factory(name, env={"CHEMWATCH_HTTP__PORT": str(port)})
    names: set[str] = set()
    for name, port in ports.items():
        wait_until(lambda p=port: _serving(p), 90, f"{name} /metrics")
        names |= exported(port)
    # the consumer lag is measured after every poll, so each consumer reports its partitions
    for name, metric in (("detectors", "detectors"), ("alerting", "alerting")):
        wait_until(
            lambda p=ports[name], m=metric: _has_samples(p, f"chemwatch_{m}_kafka_lag"),
            60,
            f"{name} reports its Kafka consumer lag",
        )
    wanted = set().union(*(grafana.metric_names(q.text) for q in promql_queries()))
    assert wanted, "the dashboards use no ChemWatch metric"
    missing = sorted(wanted - names)
    assert not missing, f"dashboards use metrics no service exports: {missing}"
