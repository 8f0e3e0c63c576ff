"""Instrument behaviour: reporting intervals, quantisation, report-by-exception."""

from __future__ import annotations

import numpy as np

from common.registry import load_registry
from simulators.plant import Simulation
from simulators.scenario import parse_scenario
from simulators.sensors import quantum
from tests.fixtures.services import ROOT

REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
STEADY = parse_scenario({"name": "steady"}, REGISTRY)


def _readings(rbe_pct: float, seconds: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sim = Simulation(REGISTRY, STEADY, seed=5, start_ns=0, rbe_pct=rbe_pct)
    steps = [sim.step() for _ in range(seconds * 2)]
    return (np.concatenate([s.sensor for s in steps]),
            np.concatenate([s.ts_ns for s in steps]) / 1e9,
            np.concatenate([s.value for s in steps]))  # fmt: skip


def test_each_sensor_reports_at_its_registry_interval() -> None:
    sensor, ts, _v = _readings(0.0)
    for ref in REGISTRY:
        mine = np.sort(ts[sensor == ref.index])
        assert np.allclose(np.diff(mine), ref.sensor.interval_s, atol=0.5)


def test_values_are_quantised_to_the_transmitter_resolution() -> None:
    sensor, _ts, value = _readings(0.0, 60)
    lo, hi = REGISTRY.range_arrays()
    q = quantum(hi - lo)[sensor]
    assert np.allclose(value / q, np.round(value / q), atol=1e-6)
    assert set(quantum(np.array([100.0, 25.0, 10.0, 120.0]))) == {0.1, 0.01}


def test_report_by_exception_sends_less_but_keeps_a_heartbeat() -> None:
    sensor, _ts, _v = _readings(0.0)
    sensor_rbe, ts_rbe, _v = _readings(2.0)
    assert len(sensor_rbe) < 0.5 * len(sensor)
    for ref in REGISTRY:
        mine = np.sort(ts_rbe[sensor_rbe == ref.index])
        assert len(mine) >= 2
        assert np.diff(mine).max() <= 10 * ref.sensor.interval_s + 0.5  # heartbeat
