"""Major-risk incidents: correlation rules (data, from a YAML file) and four-colour levels.

A rule fires when, within ``window_s`` in one unit or area, every clause of it is met
by recent activations (sensor kind and condition name patterns, a minimum number of
distinct sensors, optionally in order). Its level ([project choice]):

    level = rule severity (1 blue .. 4 red)
            + 1 if any contributing alarm has critical priority
            + hazard weight of the worst unit involved (GB 18218 grade 1/2: +1,
              grade 3: 0, grade 4 or not a major hazard: -1)
    clamped to 1..4  ->  blue / yellow / orange / red

Sensor-fault (FAULT_*) alarms never take part; an active fault on a contributing
sensor lowers the incident's confidence instead. A site's risk level is the highest
level of its open incidents (blue when there is none).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import psycopg
import yaml
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerting import changes
from alerting.plant import PlantView
from common.errors import ConfigError

LEVELS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
LEVEL_RANK: dict[str, int] = {name: i + 1 for i, name in enumerate(LEVELS)}
_HAZARD_WEIGHT: dict[int | None, int] = {1: 1, 2: 1, 3: 0, 4: -1, None: -1}


class Clause(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kinds: tuple[str, ...] = ()  # sensor kinds; empty = any
    conditions: tuple[str, ...] = Field(min_length=1)  # fnmatch patterns, e.g. "ROC_*"
    min_sensors: int = Field(default=1, ge=1)


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    title: str
    scope: Literal["unit", "area"] = "unit"
    window_s: float = Field(default=600, gt=0)
    severity: int = Field(ge=1, le=4)
    ordered: bool = False  # clauses must first be met in the order written
    match: tuple[Clause, ...] = Field(min_length=1)


class RuleSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    rules: tuple[Rule, ...] = ()


def load_rules(path: Path | str) -> RuleSet:
    """Load and validate a rules file; errors name the file, key and problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return RuleSet.model_validate(raw or {})
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read rules: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"not valid YAML: {exc}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(str(path), ".".join(map(str, err["loc"])), err["msg"]) from exc


def level_for(severity: int, any_critical: bool, grade: int | None) -> str:
    """Four-colour level from rule severity, condition priority and hazard grade."""
    score = severity + (1 if any_critical else 0) + _HAZARD_WEIGHT.get(grade, -1)
    return LEVELS[min(max(score, 1), 4) - 1]


def _clause_hits(
    clause: Clause, alarms: list[dict[str, Any]], plant: PlantView
) -> list[dict[str, Any]]:
    return [
        a
        for a in alarms
        if (not clause.kinds or plant.kind(a["sensor_id"]) in clause.kinds)
        and any(fnmatchcase(a["condition"], p) for p in clause.conditions)
    ]


def _clause_hits_any(rule: Rule, row: dict[str, Any], plant: PlantView) -> bool:
    return any(_clause_hits(c, [row], plant) for c in rule.match)


def _matches(
    rule: Rule, alarms: list[dict[str, Any]], plant: PlantView
) -> list[dict[str, Any]] | None:
    """The alarms that satisfy every clause, or None when the rule is not met."""
    used: list[dict[str, Any]] = []
    previous_first: datetime | None = None
    for clause in rule.match:
        hits = _clause_hits(clause, alarms, plant)
        if len({a["sensor_id"] for a in hits}) < clause.min_sensors:
            return None
        first = min(a["activated_at"] for a in hits)
        if rule.ordered and previous_first is not None and first < previous_first:
            return None
        previous_first = first
        used.extend(hits)
    return used


def evaluate(
    conn: psycopg.Connection[Any],
    rules: RuleSet,
    plant: PlantView,
    row: dict[str, Any],
    ts: datetime,
) -> list[int]:
    """Open or raise incidents that the alarm in ``row`` completes; return their ids."""
    touched = []
    hit = [rule for rule in rules.rules if _clause_hits_any(rule, row, plant)]
    # the new alarm cannot complete the other rules: no query for them. The rules it may
    # complete share one query per scope (unit / area), over the longest of their windows.
    recent_by_scope: dict[str, list[dict[str, Any]]] = {}
    for scope in sorted({rule.scope for rule in hit}):
        column, value = ("area", row["area"]) if scope == "area" else ("unit_id", row["unit_id"])
        longest = max(rule.window_s for rule in hit if rule.scope == scope)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"SELECT alarm_id, sensor_id, unit_id, condition, priority, activated_at, active"
                f" FROM alarms WHERE site_id = %s AND {column} = %s AND category = 'process'"
                " AND activated_at > %s AND activated_at <= %s",
                (row["site_id"], value, ts - timedelta(seconds=longest), ts),
            )
            recent_by_scope[scope] = list(cur.fetchall())
    for rule in hit:
        value = row["area"] if rule.scope == "area" else row["unit_id"]
        start = ts - timedelta(seconds=rule.window_s)
        recent = [a for a in recent_by_scope[rule.scope] if a["activated_at"] > start]
        used = _matches(rule, recent, plant)
        if used is None or row["alarm_id"] not in {a["alarm_id"] for a in used}:
            continue
        grades = [plant.grade(a["unit_id"]) for a in used]
        worst = min((g for g in grades if g is not None), default=None)
        level = level_for(rule.severity, any(a["priority"] == "critical" for a in used), worst)
        touched.append(_upsert(conn, rule, f"{row['site_id']}/{value}", row, used, level, ts))
    return touched


def _confidence(conn: psycopg.Connection[Any], sensors: list[str]) -> float:
    row = conn.execute(
        "SELECT count(DISTINCT sensor_id) FROM alarms WHERE sensor_id = ANY(%s)"
        " AND condition LIKE 'FAULT\\_%%' AND active",
        (sensors,),
    ).fetchone()
    faulty = int(row[0]) if row else 0
    return round(1.0 - 0.5 * faulty / max(len(sensors), 1), 3)


def refresh_confidence(conn: psycopg.Connection[Any], sensor: str) -> list[int]:
    """Re-rate open incidents that rely on ``sensor`` after its fault state changed."""
    changed = []
    rows = conn.execute(
        "SELECT id, details->'sensors', confidence FROM incidents"
        " WHERE closed_at IS NULL AND details->'sensors' ? %s FOR UPDATE",
        (sensor,),
    ).fetchall()
    for incident_id, sensors, old in rows:
        confidence = _confidence(conn, list(sensors))
        if abs(confidence - old) > 1e-6:
            conn.execute(
                "UPDATE incidents SET confidence = %s WHERE id = %s", (confidence, incident_id)
            )
            changes.append(conn, "incident", str(incident_id), get(conn, incident_id) or {})
            changed.append(int(incident_id))
    return changed


def _upsert(
    conn: psycopg.Connection[Any],
    rule: Rule,
    scope_key: str,
    row: dict[str, Any],
    used: list[dict[str, Any]],
    level: str,
    ts: datetime,
) -> int:
    ids = sorted({a["alarm_id"] for a in used})
    sensors = sorted({a["sensor_id"] for a in used})
    confidence = _confidence(conn, sensors)
    existing = conn.execute(
        "SELECT id, level, alarm_ids FROM incidents WHERE rule_id = %s AND scope_key = %s"
        " AND closed_at IS NULL FOR UPDATE",
        (rule.id, scope_key),
    ).fetchone()
    if existing is None:
        found = conn.execute(
            "INSERT INTO incidents (rule_id, title, scope_key, site_id, unit_id, area, level,"
            " confidence, opened_at, updated_at, alarm_ids, details) VALUES"
            " (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (
                rule.id,
                rule.title,
                scope_key,
                row["site_id"],
                row["unit_id"] if rule.scope == "unit" else None,
                row["area"],
                level,
                confidence,
                ts,
                ts,
                ids,
                Jsonb({"sensors": sensors, "levels": [[ts.isoformat(), level]]}),
            ),
        ).fetchone()
        assert found is not None
        incident_id = int(found[0])
    else:
        incident_id = int(existing[0])
        if LEVEL_RANK[level] < LEVEL_RANK[existing[1]]:
            level = existing[1]  # an incident's level never drops while it is open
        conn.execute(
            "UPDATE incidents SET level = %s, confidence = %s, updated_at = %s,"
            " alarm_ids = ARRAY(SELECT DISTINCT unnest(alarm_ids || %s::text[]) ORDER BY 1),"
            " details = jsonb_set(details, '{levels}', details->'levels' || %s)"
            " WHERE id = %s",
            (level, confidence, ts, ids, Jsonb([[ts.isoformat(), level]]), incident_id),
        )
    changes.append(conn, "incident", str(incident_id), get(conn, incident_id) or {})
    return incident_id


def get(conn: psycopg.Connection[Any], incident_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM incidents WHERE id = %s", (incident_id,))
        return cur.fetchone()


def listing(conn: psycopg.Connection[Any], open_only: bool = True) -> list[dict[str, Any]]:
    """Incidents, most severe first, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT * FROM incidents"
            + (" WHERE closed_at IS NULL" if open_only else "")
            + " ORDER BY array_position(ARRAY['red','orange','yellow','blue'], level),"
            " opened_at DESC"
        )
        return list(cur.fetchall())


def close_quiet(conn: psycopg.Connection[Any], now: datetime, quiet_s: float = 300) -> list[int]:
    """Close open incidents none of whose alarms is active any more (after ``quiet_s``)."""
    closed = []
    with changes.transaction(conn):
        rows = conn.execute(
            "SELECT i.id FROM incidents i WHERE i.closed_at IS NULL AND i.updated_at <= %s"
            " AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.alarm_id = ANY(i.alarm_ids)"
            " AND a.active) FOR UPDATE",
            (now - timedelta(seconds=quiet_s),),
        ).fetchall()
        for (incident_id,) in rows:
            conn.execute("UPDATE incidents SET closed_at = %s WHERE id = %s", (now, incident_id))
            changes.append(conn, "incident", str(incident_id), get(conn, incident_id) or {})
            closed.append(int(incident_id))
    return closed


def acknowledge(
    conn: psycopg.Connection[Any], incident_id: int, user: str, now: datetime
) -> dict[str, Any] | None:
    """Record that someone took charge of an incident."""
    with changes.transaction(conn):
        conn.execute(
            "UPDATE incidents SET acked_at = %s, acked_by = %s WHERE id = %s AND acked_at IS NULL",
            (now, user, incident_id),
        )
        row = get(conn, incident_id)
        if row is not None:
            changes.append(conn, "incident", str(incident_id), row)
    return row


def site_risk(conn: psycopg.Connection[Any], plant: PlantView) -> list[dict[str, Any]]:
    """Per site: risk level (highest open incident level, else blue) and hazard data."""
    open_ = listing(conn, open_only=True)
    sites = set(plant.site_names) | {i["site_id"] for i in open_}
    out = []
    for site in sorted(sites):
        mine = [i for i in open_ if i["site_id"] == site]
        level = max((i["level"] for i in mine), key=LEVEL_RANK.__getitem__, default="blue")
        units = [u for u, s in plant.unit_site.items() if s == site]
        grades = [g for u in units if (g := plant.grade(u)) is not None]
        out.append(
            {
                "site_id": site,
                "name": plant.site_names.get(site, site),
                "level": level,
                "open_incidents": len(mine),
                "worst_hazard_grade": min(grades, default=None),
                "max_r_value": round(max((plant.grades[u].r for u in units), default=0.0), 1),
            }
        )
    return out
