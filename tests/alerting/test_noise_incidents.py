"""Floods and major-risk incidents on the real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from alerting import changes, incidents, kpi, noise, store
from alerting.context import build_context
from alerting.settings import AlertingSettings
from alerting.store import Context
from tests.alerting.helpers import at, pair
from tests.fixtures.services import ROOT

pytestmark = pytest.mark.integration

# The haibin LPG sphere farm (TK101 + TK102) is one console area.
LPG_SENSORS = [
    *(f"TK101-GD-0{i}" for i in range(1, 7)),
    "TK101-PT-01",
    "TK101-PT-02",
    "TK101-TT-01",
    "TK101-TT-02",
    "TK101-LT-01",
    *(f"TK102-GD-0{i}" for i in range(1, 5)),
]


@pytest.fixture
def ctx() -> Context:
    return build_context(
        AlertingSettings(
            plant=ROOT / "examples" / "plant.yaml",
            alerting={"rules": ROOT / "examples" / "rules.yaml"},
        )
    )


def _unit(sensor: str) -> str:
    return sensor.split("-")[0]


def test_flood_starts_above_ten_in_ten_minutes_and_records_first_out(
    db: psycopg.Connection, ctx: Context
) -> None:
    sensors = LPG_SENSORS[:12]
    for k, sensor in enumerate(sensors[:10]):
        store.apply_event(db, pair(sensor, "H", k * 30, unit=_unit(sensor))[0], ctx)
    assert noise.open_floods(db) == []  # 10 in 10 minutes is not yet a flood
    store.apply_event(db, pair(sensors[10], "H", 310, unit=_unit(sensors[10]))[0], ctx)
    (flood,) = noise.open_floods(db)
    assert (flood["site_id"], flood["area"]) == ("haibin-terminal", "LPG sphere farm")
    assert flood["first_alarm_id"] == f"{sensors[0]}:H"
    assert flood["alarm_count"] == 11
    store.apply_event(
        db, pair(sensors[11], "HH", 320, unit=_unit(sensors[11]), severity="critical")[0], ctx
    )
    grouped = store.list_alarms(db, area="LPG sphere farm")
    assert {a["flood_id"] for a in grouped} == {flood["id"]}
    assert grouped[0]["alarm_id"] == f"{sensors[11]}:HH"  # critical stays on top
    # other consoles are not in the flood
    store.apply_event(db, pair("TK201-PT-01", "H", 330, unit="TK201")[0], ctx)
    assert store.get_alarm(db, "TK201-PT-01:H")["flood_id"] is None
    # quiet again: fewer than 5 new alarms within 10 minutes ends it
    assert noise.end_floods(db, at(330), ctx.limits) == []
    assert noise.end_floods(db, at(320 + 600), ctx.limits) == [flood["id"]]
    assert noise.open_floods(db) == []
    # KPIs over the hour from just before the first alarm: the flood lasted 610 s
    kpis = kpi.alarm_kpis(db, at(3599), window_h=1)
    lpg = next(c for c in kpis["consoles"] if c["area"] == "LPG sphere farm")
    assert lpg["alarms"] == 12
    assert lpg["floods"] == 1
    assert lpg["time_in_flood_pct"] == pytest.approx(100 * 610 / 3600)
    assert kpis["total_alarms"] == 13
    # the critical HH, and the high TK201 alarm raised by its grade-2 installation
    assert kpis["priority_distribution_pct"]["critical"] == pytest.approx(100 * 2 / 13)


def test_gas_second_level_at_two_detectors_opens_an_incident(
    db: psycopg.Connection, ctx: Context
) -> None:
    # ammonia store TK201: 200 t NH3, 120 people -> R = 80, grade 2 (+1)
    store.apply_event(db, pair("TK201-GD-01", "HH", 0, unit="TK201")[0], ctx)
    assert incidents.listing(db) == []  # one detector alone is not an incident
    store.apply_event(db, pair("TK201-GD-02", "HH", 40, unit="TK201")[0], ctx)
    (incident,) = incidents.listing(db)
    assert incident["rule_id"] == "gas-second-level-two-detectors"
    assert incident["level"] == "red"  # severity 3 + grade-2 weight 1
    assert incident["alarm_ids"] == ["TK201-GD-01:HH", "TK201-GD-02:HH"]
    assert incident["confidence"] == 1.0
    risk = {r["site_id"]: r for r in incidents.site_risk(db, ctx.plant)}
    assert risk["haibin-terminal"]["level"] == "red"
    assert risk["jinghe-finechem"]["level"] == "blue"


def test_hazard_grade_weights_the_level(db: psycopg.Connection, ctx: Context) -> None:
    # the same rule in the Loading area (LD301: 25 t LPG + 20 t NH3 -> S = 2.5,
    # R = 2 x (1.5 x 0.5 + 2 x 2) = 9.5 -> grade 4, weight -1)
    for k, sensor in enumerate(["LD301-GD-01", "LD301-GD-02"]):
        store.apply_event(db, pair(sensor, "HH", k, unit="LD301")[0], ctx)
    assert ctx.plant.grade("LD301") == 4
    (incident,) = incidents.listing(db)
    assert incident["level"] == "yellow"


def test_detectors_outside_the_window_do_not_correlate(
    db: psycopg.Connection, ctx: Context
) -> None:
    store.apply_event(db, pair("TK201-GD-01", "HH", 0, unit="TK201")[0], ctx)
    store.apply_event(db, pair("TK201-GD-02", "HH", 301, unit="TK201")[0], ctx)
    assert incidents.listing(db) == []


def test_reactor_runaway_rule_and_sensor_fault_lowers_confidence(
    db: psycopg.Connection, ctx: Context
) -> None:
    store.apply_event(
        db, pair("R501-PT-01", "FAULT_STUCK", 0, unit="R501", site="jinghe-finechem")[0], ctx
    )
    store.apply_event(
        db, pair("R501-TT-01", "ROC_HIGH", 10, unit="R501", site="jinghe-finechem")[0], ctx
    )
    assert incidents.listing(db) == []  # a sensor fault never makes a process incident
    store.apply_event(db, pair("R501-PT-01", "H", 20, unit="R501", site="jinghe-finechem")[0], ctx)
    (incident,) = incidents.listing(db)
    assert incident["rule_id"] == "reactor-runaway-precursor"
    assert incident["confidence"] == 0.75  # one of the two sensors reports a fault
    fault = store.get_alarm(db, "R501-PT-01:FAULT_STUCK")
    assert fault["category"] == "maintenance"
    # a fault of the other sensor, after the incident opened, lowers it further;
    # when the faults clear the incident is fully trusted again
    kw = {"unit": "R501", "site": "jinghe-finechem"}
    tt_fault = pair("R501-TT-01", "FAULT_STALE", 30, 40, **kw)
    store.apply_event(db, tt_fault[0], ctx)
    assert incidents.listing(db)[0]["confidence"] == 0.5
    store.apply_event(db, tt_fault[1], ctx)
    store.apply_event(db, pair("R501-PT-01", "FAULT_STUCK", 0, 50, **kw)[1], ctx)
    assert incidents.listing(db)[0]["confidence"] == 1.0


def test_ordered_rule_needs_cooling_loss_first(db: psycopg.Connection, ctx: Context) -> None:
    # no flow sensor in the example plant: a rules set of our own, with a pressure stand-in
    rules = incidents.RuleSet.model_validate(
        {
            "rules": [
                {
                    "id": "cooling",
                    "title": "loss of cooling then temperature rise",
                    "scope": "unit",
                    "severity": 2,
                    "ordered": True,
                    "window_s": 900,
                    "match": [
                        {"kinds": ["pressure"], "conditions": ["L"]},
                        {"kinds": ["temperature"], "conditions": ["H"]},
                    ],
                }
            ]
        }
    )
    ctx.rules = rules
    kw = {"unit": "R502", "site": "jinghe-finechem"}
    store.apply_event(db, pair("R502-TT-01", "H", 0, **kw)[0], ctx)
    store.apply_event(db, pair("R502-PT-01", "L", 10, **kw)[0], ctx)
    assert incidents.listing(db) == []  # temperature first: not this pattern
    store.apply_event(db, pair("R502-TT-02", "H", 20, **kw)[0], ctx)
    assert incidents.listing(db) == []  # earliest temperature hit is still before
    store.apply_event(db, pair("R502-PT-01", "L", 1000, **kw)[0], ctx)
    store.apply_event(db, pair("R502-TT-01", "H", 1010, **kw)[0], ctx)
    (incident,) = incidents.listing(db)
    assert incident["rule_id"] == "cooling"


def test_incident_level_rises_and_closes_when_quiet(db: psycopg.Connection, ctx: Context) -> None:
    kw = {"unit": "LD301"}
    events = {
        s: pair(s, "HH", start, 60, severity=sev, **kw)
        for s, start, sev in [
            ("LD301-GD-01", 0, "high"),
            ("LD301-GD-02", 1, "high"),
            ("LD301-GD-03", 5, "critical"),
        ]
    }
    for s in ["LD301-GD-01", "LD301-GD-02"]:
        store.apply_event(db, events[s][0], ctx)
    (incident,) = incidents.listing(db)
    assert incident["level"] == "yellow"
    store.apply_event(db, events["LD301-GD-03"][0], ctx)
    by_rule = {i["rule_id"]: i for i in incidents.listing(db)}
    incident = by_rule["gas-second-level-two-detectors"]
    assert incident["level"] == "orange"  # a critical condition joined: level rises
    assert [lv for _, lv in incident["details"]["levels"]] == ["yellow", "orange"]
    assert "gas-first-level-spreading" in by_rule  # three detectors: a second rule fires
    for active_cleared in events.values():
        store.apply_event(db, active_cleared[1], ctx)
    assert incidents.close_quiet(db, at(100), quiet_s=300) == []
    assert sorted(incidents.close_quiet(db, at(400), quiet_s=300)) == sorted(
        i["id"] for i in by_rule.values()
    )
    assert incidents.listing(db) == []


def test_change_log_orders_every_change(db: psycopg.Connection, ctx: Context) -> None:
    store.apply_event(db, pair("TK201-GD-01", "HH", 0, unit="TK201")[0], ctx)
    store.apply_event(db, pair("TK201-GD-02", "HH", 1, unit="TK201")[0], ctx)
    log = changes.since(db, 0)
    assert [kind for _, kind, _ in log] == ["alarm", "alarm", "incident"]
    ids = [i for i, _, _ in log]
    assert ids == sorted(ids)
    assert changes.since(db, ids[0]) == log[1:]
