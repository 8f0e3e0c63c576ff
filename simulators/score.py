"""``chemwatch score``: compare what the pipeline found with a run's ground truth.

Reads the condition transitions the detectors stored (``anomalies``: time, sensor,
condition, state) for the run's time span and matches them with the injected events:

* a process hazard is *detected* when a process condition (HH/H/L/LL and any other
  condition not prefixed ``FAULT_``) becomes active on one of the sensors it affected,
  between its start and the end of its effect (the cause's end, or the last time a
  true value was beyond a limit, whichever is later) plus a grace period; the
  *delay* is measured from the earliest knowable time (first true limit crossing),
  or from the start when no limit was crossed;
* a sensor fault is *recognised* when a ``FAULT_`` condition becomes active on one of
  its sensors in its window, and *misreported* when a process condition does instead;
* every other process-condition activation is a *false alarm*; the rate is per
  sensor-day over the run's span and the registry's sensors;
* a hazard *raised an incident* when alerting opened a major-risk incident (table
  ``incidents``) for it in the same window: on its unit, or an area incident whose
  contributing sensors include one of the hazard's sensors; its level is the highest
  of them (blue < yellow < orange < red) and the delay is measured like the detection
  delay. Every incident opened in the run's span that no hazard explains is a *false
  incident* (also those during sensor faults: a fault must not make a process incident).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from common.cli import add_common_arguments
from common.errors import ConfigError, ServiceUnavailable
from common.process import guarded, settings_from_args
from common.registry import load_registry
from common.settings import DatabaseSettings
from simulators.settings import SimulatorSettings
from simulators.truth import read_truth

FAULT_PREFIX = "FAULT_"
LEVELS = ("blue", "yellow", "orange", "red")


@dataclass(frozen=True, slots=True)
class Activation:
    time: datetime
    sensor: str
    condition: str

    @property
    def is_fault(self) -> bool:
        return self.condition.startswith(FAULT_PREFIX)


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    opened_at: datetime
    rule_id: str
    unit_id: str | None
    level: str
    sensors: tuple[str, ...] = ()

    def label(self) -> str:
        return f"{self.opened_at.isoformat()} #{self.id} {self.rule_id} {self.unit_id or '-'}"


@dataclass(slots=True)
class EventScore:
    id: str
    kind: str
    category: str
    sensors: list[str]
    outcome: str  # detected / missed / recognised / misreported / unnoticed / not scored
    delay_s: float | None = None
    conditions: list[str] = field(default_factory=list)
    incident_level: str | None = None  # hazards: highest level of the incidents raised
    incident_delay_s: float | None = None
    incidents: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Score:
    run: dict[str, Any]
    events: list[EventScore]
    false_alarms: int
    false_alarms_per_sensor_day: float
    false_fault_reports: int
    activations: int
    alarms: int | None
    unexplained: list[str] = field(default_factory=list)  # "time sensor:condition"
    incidents: int | None = None  # opened in the run's span (None: no incidents table)
    false_incidents: list[str] = field(default_factory=list)  # Incident.label()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _t(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def fetch_activations(
    db: DatabaseSettings, start: datetime, end: datetime
) -> tuple[list[Activation], int | None]:
    """Condition activations (and the number of alarms raised) between start and end."""
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT time, sensor_id, condition FROM anomalies"
            " WHERE state = 'active' AND time >= %s AND time <= %s ORDER BY time",
            (start, end),
        ).fetchall()
        try:
            alarms = conn.execute(
                "SELECT count(*) FROM alarms WHERE activated_at >= %s AND activated_at <= %s",
                (start, end),
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            alarms = None
    return [Activation(*r) for r in rows], (int(alarms[0]) if alarms else None)


def fetch_incidents(db: DatabaseSettings, start: datetime, end: datetime) -> list[Incident] | None:
    """Incidents opened between start and end (None when alerting's tables are absent)."""
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        try:
            rows = conn.execute(
                "SELECT id, opened_at, rule_id, unit_id, level,"
                " COALESCE(details->'sensors', '[]'::jsonb) FROM incidents"
                " WHERE opened_at >= %s AND opened_at <= %s ORDER BY opened_at, id",
                (start, end),
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return None
    return [Incident(int(i), t, r, u, lv, tuple(map(str, ss))) for i, t, r, u, lv, ss in rows]


def _score_incidents(
    s: EventScore, ev: dict[str, Any], incidents: list[Incident], start: datetime,
    until: datetime, explained: set[int],
) -> None:  # fmt: skip
    """Incidents raised for a hazard: on its unit, or involving one of its sensors."""
    sensors = set(ev["sensors"])
    unit = ev.get("unit")
    mine = [
        (k, inc)
        for k, inc in enumerate(incidents)
        if start <= inc.opened_at <= until
        and ((unit is not None and inc.unit_id == unit) or sensors & set(inc.sensors))
    ]
    explained |= {k for k, _ in mine}
    if mine:
        ref = _t(ev.get("first_knowable")) or start
        s.incident_level = max((inc.level for _, inc in mine), key=_rank)
        s.incident_delay_s = (mine[0][1].opened_at - ref).total_seconds()
        s.incidents = [inc.id for _, inc in mine]


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else -1


def score(
    header: dict[str, Any],
    events: list[dict[str, Any]],
    activations: list[Activation],
    n_sensors: int,
    grace_s: float = 120.0,
    alarms: int | None = None,
    incidents: list[Incident] | None = None,
) -> Score:
    """Match activations (and incidents, when given) to events (pure: no I/O)."""
    grace = timedelta(seconds=grace_s)
    explained: set[int] = set()
    explained_incidents: set[int] = set()
    scores = []
    for ev in events:
        sensors = set(ev["sensors"])
        start = datetime.fromisoformat(ev["start"])
        end = datetime.fromisoformat(ev["end"])
        beyond = _t(ev.get("beyond_limits_until"))
        until = max(end, beyond or end) + grace
        window = [
            (k, a)
            for k, a in enumerate(activations)
            if a.sensor in sensors and start <= a.time <= until
        ]
        process = [(k, a) for k, a in window if not a.is_fault]
        faults = [(k, a) for k, a in window if a.is_fault]
        s = EventScore(ev["id"], ev["kind"], ev["category"], ev["sensors"], "not scored")
        if ev["category"] == "hazard":
            explained |= {k for k, _ in process}
            if process:
                ref = _t(ev.get("first_knowable")) or start
                s.outcome = "detected"
                s.delay_s = (process[0][1].time - ref).total_seconds()
            else:
                s.outcome = "missed"
            s.conditions = sorted({f"{a.sensor}:{a.condition}" for _, a in process})
            if incidents is not None:
                _score_incidents(s, ev, incidents, start, until, explained_incidents)
        elif ev["category"] == "fault":
            explained |= {k for k, _ in window}
            if faults:
                s.outcome = "recognised+misreported" if process else "recognised"
                s.delay_s = (faults[0][1].time - start).total_seconds()
            else:
                s.outcome = "misreported" if process else "unnoticed"
            s.conditions = sorted({f"{a.sensor}:{a.condition}" for _, a in window})
        scores.append(s)
    run_start, run_end = _t(header.get("start")), _t(header.get("end"))
    days = ((run_end - run_start).total_seconds() / 86400) if run_start and run_end else 0.0
    unexplained = [a for k, a in enumerate(activations) if k not in explained]
    false_alarms = sum(not a.is_fault for a in unexplained)
    per_sensor_day = false_alarms / (n_sensors * days) if n_sensors and days else 0.0
    return Score(
        header,
        scores,
        false_alarms,
        per_sensor_day,
        sum(a.is_fault for a in unexplained),
        len(activations),
        alarms,
        [f"{a.time.isoformat()} {a.sensor}:{a.condition}" for a in unexplained],
        None if incidents is None else len(incidents),
        [inc.label() for k, inc in enumerate(incidents or []) if k not in explained_incidents],
    )


def render(s: Score) -> str:
    """A table for people."""
    lines = [
        f"run: {s.run.get('scenario')} {s.run.get('start')} .. {s.run.get('end')}",
        f"{'event':<26} {'category':<9} {'outcome':<24} {'delay s':>8}  "
        + ("" if s.incidents is None else f"{'incident':<18} ")
        + "conditions",
    ]
    for e in s.events:
        delay = "" if e.delay_s is None else f"{e.delay_s:8.1f}"
        conds = ", ".join(e.conditions[:4]) + (" ..." if len(e.conditions) > 4 else "")
        inc = ""
        if s.incidents is not None:
            if e.category != "hazard":
                inc = ""
            elif e.incident_level is None:
                inc = "none"
            else:
                inc = f"{e.incident_level} +{e.incident_delay_s:.1f}s"
            inc = f"{inc:<18} "
        lines.append(f"{e.id:<26} {e.category:<9} {e.outcome:<24} {delay:>8}  {inc}{conds}")
    hazards = [e for e in s.events if e.category == "hazard"]
    faults = [e for e in s.events if e.category == "fault"]
    detected = sum(e.outcome == "detected" for e in hazards)
    misreported = sum("misreported" in e.outcome for e in faults)
    lines += [
        f"hazards detected: {detected}/{len(hazards)}; faults recognised as faults: "
        f"{sum(e.outcome.startswith('recognised') for e in faults)}/{len(faults)}, "
        f"misreported as process hazards: {misreported}",
        f"false alarms: {s.false_alarms} ({s.false_alarms_per_sensor_day:.3f} per sensor-day); "
        f"unexplained fault reports: {s.false_fault_reports}; condition activations: "
        f"{s.activations}" + ("" if s.alarms is None else f"; alarms raised: {s.alarms}"),
    ]
    if s.incidents is not None:
        raised = sum(e.incident_level is not None for e in hazards)
        lines.append(
            f"incidents: {s.incidents} opened; hazards with an incident: {raised}/{len(hazards)};"
            f" false incidents: {len(s.false_incidents)}"
        )
    lines += [f"  unexplained: {u}" for u in s.unexplained[:10]]
    lines += [f"  false incident: {u}" for u in s.false_incidents[:10]]
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``score``."""
    p = sub.add_parser(
        "score", help="score the pipeline against a simulator run's ground truth",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_common_arguments(p)
    p.add_argument("--truth", type=Path, required=True, help="ground-truth JSONL of the run")
    p.add_argument("--grace-s", type=float, default=120.0, help="late detections still count")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``chemwatch score``."""

    def main() -> int:
        settings = settings_from_args(SimulatorSettings, args)
        try:
            header, events = read_truth(args.truth)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(args.truth), "", f"cannot read ground truth: {exc}") from exc
        start, end = _t(header.get("start")), _t(header.get("end"))
        if start is None or end is None:
            raise ConfigError(str(args.truth), "run", "no run header with start and end")
        n = len(load_registry(header.get("plant") or settings.plant))
        try:
            until = end + timedelta(seconds=args.grace_s)
            acts, alarms = fetch_activations(settings.database, start, until)
            incidents = fetch_incidents(settings.database, start, until)
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
        except psycopg.Error as exc:
            schema = settings.database.db_schema
            raise ConfigError("database", schema, f"cannot read the anomalies: {exc}") from exc
        result = score(header, events, acts, n, args.grace_s, alarms, incidents)
        print(json.dumps(result.as_dict(), default=str) if args.json else render(result))
        return 0

    return guarded(main)
