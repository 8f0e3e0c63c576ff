"""The provisioned Grafana dashboards as data: every query, with Grafana's macros expanded.

Used by the dashboard tests (every SQL query runs on both database flavours, every
PromQL expression goes through promtool) and by ``chemwatch bench dashboards``.
Expansion follows Grafana's PostgreSQL data source: ``$__timeFilter(col)`` becomes
``col BETWEEN '<from>' AND '<to>'``; multi-value / "All" variables become a quoted,
comma-separated list; single-value custom variables are substituted as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_TIME_FILTER = re.compile(r"\$__timeFilter\(([^()]*(?:\([^()]*\))?[^()]*)\)")


@dataclass(frozen=True, slots=True)
class Query:
    """One query of a dashboard: a panel target, an annotation or a variable."""

    dashboard: str
    where: str  # panel title / "annotation: name" / "variable: name"
    ref: str
    language: str  # "sql" or "promql"
    text: str
    format: str  # "time_series", "table" (SQL) or "" (PromQL)

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.where} / {self.ref}"


def load(path: Path) -> dict[str, Any]:
    """One dashboard JSON document."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def dashboard_files() -> list[Path]:
    """Every provisioned dashboard JSON file."""
    return sorted(DASHBOARDS.glob("*.json"))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def _language(ds: Any) -> str:
    kind = ds.get("type", "") if isinstance(ds, dict) else str(ds or "")
    return "promql" if "prometheus" in kind else "sql"


def queries(path: Path) -> list[Query]:
    """Every query in a dashboard: variables, annotations, panel targets."""
    doc = load(path)
    name = path.stem
    out: list[Query] = []
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            text = var["query"]["rawSql"] if isinstance(var["query"], dict) else var["query"]
            lang = _language(var.get("datasource"))
            out.append(Query(name, f"variable: {var['name']}", "var", lang, text, "table"))
    for ann in doc.get("annotations", {}).get("list", []):
        text = ann.get("rawQuery") or (ann.get("target") or {}).get("rawSql")
        if text:
            out.append(Query(name, f"annotation: {ann['name']}", "ann", "sql", text, "table"))
    for panel in _panels(doc.get("panels", [])):
        for target in panel.get("targets", []):
            lang = _language(target.get("datasource") or panel.get("datasource"))
            text = target.get("expr") if lang == "promql" else target.get("rawSql")
            if text:
                fmt = "" if lang == "promql" else target.get("format", "time_series")
                out.append(Query(name, panel["title"], target.get("refId", "A"), lang, text, fmt))
    return out


def variables(path: Path) -> list[dict[str, Any]]:
    """The dashboard's template variables, in order."""
    return list(load(path).get("templating", {}).get("list", []))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def grafana_interval(time_from: datetime, time_to: datetime, max_points: int = 1000) -> timedelta:
    """Roughly Grafana's $__interval: the range over the panel width, rounded up."""
    raw = (time_to - time_from) / max_points
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if raw <= timedelta(seconds=step):
            return timedelta(seconds=step)
    return timedelta(days=1)


def expand(
    text: str,
    time_from: datetime,
    time_to: datetime,
    values: dict[str, list[str]],
    quoted: set[str],
    language: str = "sql",
) -> str:
    """Replace Grafana macros and template variables the way the data source does."""
    interval = grafana_interval(time_from, time_to)
    seconds = int(interval.total_seconds())
    if language == "promql":
        text = text.replace("$__rate_interval", "1m").replace("$__range", "1h")
    text = _TIME_FILTER.sub(
        lambda m: f"{m.group(1)} BETWEEN '{_iso(time_from)}' AND '{_iso(time_to)}'", text
    )
    text = text.replace("$__timeFrom()", f"'{_iso(time_from)}'")
    text = text.replace("$__timeTo()", f"'{_iso(time_to)}'")
    text = text.replace("$__interval_ms", str(seconds * 1000))
    text = text.replace("$__interval", f"{seconds}s")

    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            return m.group(0)
        vals = values[name]
        if name in quoted:
            return ",".join(_quote(v) for v in vals) if vals else "NULL"
        return ",".join(vals)

    return _VARIABLE.sub(variable, text)


def resolve_variables(
    path: Path,
    time_from: datetime,
    time_to: datetime,
    run_sql: Callable[[str], list[tuple[Any, ...]]],
) -> tuple[dict[str, list[str]], set[str]]:
    """Every variable's values as Grafana would have them with "All" selected.

    Query variables run their (expanded) SQL through ``run_sql``; custom and constant
    variables take their current value.
    """
    values: dict[str, list[str]] = {}
    quoted: set[str] = set()
    for var in variables(path):
        name = var["name"]
        if var.get("multi") or var.get("includeAll"):
            quoted.add(name)
        if var.get("type") == "query" and _language(var.get("datasource")) == "sql":
            text = var["query"]["rawSql"] if isinstance(var["query"], dict) else var["query"]
            rows = run_sql(expand(text, time_from, time_to, values, quoted))
            values[name] = [str(r[0]) for r in rows]
        elif var.get("type") in ("custom", "constant", "textbox"):
            current = var.get("current", {}).get("value", var.get("query", ""))
            values[name] = current if isinstance(current, list) else [str(current)]
        elif var.get("type") == "datasource":
            continue
    return values, quoted


_PROM_NAME = re.compile(r"\b(chemwatch_[a-z0-9_]+)\b")


def metric_names(promql: str) -> set[str]:
    """ChemWatch metric names an expression refers to."""
    return set(_PROM_NAME.findall(promql))
