"""Scoring against ground truth (pure part), and the shipped scenarios are valid."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from chemwatch.cli import main as cli_main
from common.errors import ConfigError
from common.registry import load_registry
from simulators.plant import Simulation
from simulators.scenario import load_scenario, parse_scenario
from simulators.score import Activation, Incident, render, score
from tests.fixtures.services import ROOT, Isolation

REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
T0 = datetime.fromisoformat("2026-01-01T00:00:00+00:00")


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def ev(id_: str, category: str, start: float, end: float, sensors: list[str],
       knowable: float | None = None) -> dict:  # fmt: skip
    return {
        "id": id_, "kind": "x", "category": category, "start": at(start).isoformat(),
        "end": at(end).isoformat(), "sensors": sensors,
        "first_knowable": None if knowable is None else at(knowable).isoformat(),
        "beyond_limits_until": None,
    }  # fmt: skip


HEADER = {"start": T0.isoformat(), "end": at(86400).isoformat(), "scenario": "t"}
EVENTS = [
    ev("leak", "hazard", 100, 400, ["GD-1", "GD-2"], knowable=130),
    ev("missed", "hazard", 1000, 1100, ["PT-9"], knowable=1010),
    ev("stuck", "fault", 2000, 3000, ["PT-1"]),
    ev("spike", "fault", 4000, 4001, ["GD-3"]),
    ev("drift", "fault", 5000, 6000, ["GD-4"]),
]


def test_score_matches_activations_to_events() -> None:
    acts = [
        Activation(at(145), "GD-2", "H"),  # the leak, 15 s after it was knowable
        Activation(at(150), "GD-1", "H"),
        Activation(at(2100), "PT-1", "FAULT_STUCK"),  # recognised fault
        Activation(at(4000.5), "GD-3", "HH"),  # spike misreported as a process alarm
        Activation(at(7000), "TT-5", "H"),  # explained by nothing: false alarm
        Activation(at(8000), "TT-6", "FAULT_FLATLINE"),  # unexplained fault report
    ]
    s = score(HEADER, EVENTS, acts, n_sensors=10)
    out = {e.id: e for e in s.events}
    assert (out["leak"].outcome, out["leak"].delay_s) == ("detected", 15.0)
    assert out["leak"].conditions == ["GD-1:H", "GD-2:H"]
    assert out["missed"].outcome == "missed"
    assert (out["stuck"].outcome, out["stuck"].delay_s) == ("recognised", 100.0)
    assert out["spike"].outcome == "misreported"
    assert out["drift"].outcome == "unnoticed"
    assert s.false_alarms == 1
    assert s.false_alarms_per_sensor_day == pytest.approx(0.1)
    assert s.false_fault_reports == 1


def test_late_detection_within_grace_counts_and_after_does_not() -> None:
    late = [Activation(at(400 + 60), "GD-1", "HH")]
    assert score(HEADER, EVENTS, late, 10, grace_s=120).events[0].outcome == "detected"
    assert score(HEADER, EVENTS, late, 10, grace_s=30).events[0].outcome == "missed"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "examples" / "scenarios").glob("*.yaml")), ids=lambda p: p.stem
)
def test_shipped_scenarios_are_valid_and_run(path: Path) -> None:
    scenario = load_scenario(path, REGISTRY)
    assert scenario.events
    sim = Simulation(REGISTRY, scenario, seed=1, start_ns=0, dt_s=5)
    for _ in range(20):
        sim.step()
    assert len(sim.truth.records()) == len(scenario.events)


def test_scenario_errors_name_the_place() -> None:
    bad = {"name": "x", "events": [{"kind": "leak", "unit": "NOPE", "start": 1, "duration": 2}]}
    with pytest.raises(ConfigError, match=r"events\[0\]\.unit"):
        parse_scenario(bad, REGISTRY)
    typo = {"name": "x", "events": [{"kind": "stuck", "sensor": ["TK101-PT-01"], "start": 1,
                                     "duration": 2}]}  # fmt: skip
    with pytest.raises(ConfigError, match="sensor"):
        parse_scenario(typo, REGISTRY)
    with pytest.raises(ConfigError, match="not a reactor"):
        parse_scenario(
            {
                "name": "x",
                "events": [{"kind": "loss_of_cooling", "unit": "TK101", "start": 0, "duration": 5}],
            },
            REGISTRY,
        )


def test_incidents_matched_to_hazards_and_false_ones_counted() -> None:
    leak = ev("leak", "hazard", 100, 400, ["GD-1", "GD-2"], knowable=130) | {"unit": "TK101"}
    events = [leak, *EVENTS[1:]]
    incidents = [
        Incident(1, at(160), "gas-two-detectors", "TK101", "orange"),  # the leak, on its unit
        Incident(2, at(170), "gas-area", None, "red", ("GD-2", "GD-7")),  # area, its sensor
        Incident(3, at(2200), "gas-area", "TK102", "yellow"),  # during the stuck fault
        Incident(4, at(9000), "gas-area", "TK101", "blue"),  # long after the leak
    ]
    acts = [Activation(at(145), "GD-2", "H")]
    s = score(HEADER, events, acts, 10, incidents=incidents)
    out = {e.id: e for e in s.events}
    assert (out["leak"].incident_level, out["leak"].incident_delay_s) == ("red", 30.0)
    assert out["leak"].incidents == [1, 2]
    assert out["missed"].incident_level is None
    assert s.incidents == 4
    assert [f.split()[1] for f in s.false_incidents] == ["#3", "#4"]
    text = render(s)
    assert "red +30.0s" in text
    assert "hazards with an incident: 1/2; false incidents: 2" in text
    # without an incidents table the scorer says nothing about incidents
    assert score(HEADER, events, acts, 10).incidents is None
    assert "incident" not in render(score(HEADER, events, acts, 10))


@pytest.mark.integration
def test_score_command_reads_incidents_from_the_database(
    db: psycopg.Connection, isolation: Isolation, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    header = {"type": "run", "plant": str(ROOT / "examples" / "plant.yaml"), "scenario": "s",
              "start": t0.isoformat(),
              "end": (t0 + timedelta(seconds=1800)).isoformat()}  # fmt: skip
    leak = {"type": "event", "id": "leak", "kind": "leak", "category": "hazard",
            "unit": "TK101", "sensors": ["TK101-GD-01", "TK101-GD-02"],
            "start": (t0 + timedelta(seconds=60)).isoformat(),
            "end": (t0 + timedelta(seconds=600)).isoformat(),
            "first_knowable": (t0 + timedelta(seconds=90)).isoformat(),
            "beyond_limits_until": None, "params": {}}  # fmt: skip
    truth = tmp_path / "run.jsonl"
    truth.write_text(json.dumps(header) + "\n" + json.dumps(leak) + "\n")
    hit = t0 + timedelta(seconds=100)
    db.execute(
        "INSERT INTO anomalies (event_id, occurrence_id, time, activated_at, state, site_id,"
        " unit_id, sensor_id, condition, severity, value, threshold, detector, explanation,"
        " payload) VALUES (gen_random_uuid(), gen_random_uuid(), %s, %s, 'active', 'site',"
        " 'TK101', 'TK101-GD-02', 'HH', 'critical', 60, 50, 'limit', 'x', '{}')",
        (hit, hit),
    )
    rows = [("TK101", "orange", 130, ["TK101-GD-02"]), ("R501", "yellow", 1200, ["R501-TT-01"])]
    for unit, level, at_s, sensors in rows:
        opened = t0 + timedelta(seconds=at_s)
        db.execute(
            "INSERT INTO incidents (rule_id, title, scope_key, site_id, unit_id, level,"
            " opened_at, updated_at, details) VALUES ('r', 't', %s, 'site', %s, %s, %s, %s, %s)",
            (unit, unit, level, opened, opened, Jsonb({"sensors": sensors})),
        )
    monkeypatch.setenv("CHEMWATCH_DATABASE__DB_SCHEMA", isolation.schema)
    assert cli_main(["score", "--truth", str(truth), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (event,) = out["events"]
    assert (event["outcome"], event["incident_level"], event["incident_delay_s"]) == (
        "detected", "orange", 40.0,
    )  # fmt: skip
    assert out["incidents"] == 2
    assert len(out["false_incidents"]) == 1
    assert "R501" in out["false_incidents"][0]
