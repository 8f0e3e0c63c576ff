"""Scoring against ground truth (pure part), and the shipped scenarios are valid."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.registry import load_registry
from simulators.plant import Simulation
from simulators.scenario import load_scenario, parse_scenario
from simulators.score import Activation, score
from tests.fixtures.services import ROOT

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
