"""Each injected fault produces the data it claims; runs are deterministic for a seed;
the ground truth records what was injected."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from common.registry import load_registry
from simulators.plant import Simulation, Step
from simulators.scenario import load_scenario, parse_scenario
from tests.fixtures.services import ROOT

REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
START_NS = 1_780_000_000 * 10**9
W0, W1 = 20.0, 60.0  # fault window, simulated seconds


def run(events: list[dict[str, Any]], seed: int = 7, steps: int = 200) -> list[Step]:
    scenario = parse_scenario({"name": "t", "events": events}, REGISTRY)
    sim = Simulation(REGISTRY, scenario, seed=seed, start_ns=START_NS)
    return [sim.step() for _ in range(steps)]


def series(steps: list[Step], sensor: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step time s, reading ts s, value) of one sensor, in publication order."""
    i = REGISTRY.sensor(sensor).index
    t, ts, v = [], [], []
    for st in steps:
        hit = st.sensor == i
        t += [st.t_s] * int(hit.sum())
        ts += ((st.ts_ns[hit] - START_NS) / 1e9).tolist()
        v += st.value[hit].tolist()
    return np.array(t), np.array(ts), np.array(v)


def fault(kind: str, sensor: str, **params: Any) -> dict[str, Any]:
    return {"kind": kind, "sensors": [sensor], "start": W0, "duration": W1 - W0, **params}


def inside(ts: np.ndarray) -> np.ndarray:
    return (ts >= W0) & (ts < W1)


BASE = run([])


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    again = run([])
    other = run([], seed=8)
    for a, b in zip(BASE, again, strict=True):
        assert np.array_equal(a.sensor, b.sensor)
        assert np.array_equal(a.value, b.value)
        assert np.array_equal(a.ts_ns, b.ts_ns)
    assert any(
        len(a.value) != len(b.value) or not np.array_equal(a.value, b.value)
        for a, b in zip(BASE, other, strict=True)
    )


def test_stuck_sensor_repeats_one_value() -> None:
    _t, ts, v = series(run([fault("stuck", "TK101-PT-02")]), "TK101-PT-02")
    assert len(set(v[inside(ts)])) == 1
    assert len(set(series(BASE, "TK101-PT-02")[2][inside(ts)])) > 1  # normally it moves


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [("offset", {"magnitude": 2.0}, lambda ts: np.full(len(ts), 2.0)),
     ("spike", {"magnitude": 30.0}, lambda ts: np.full(len(ts), 30.0)),
     ("drift", {"rate_per_h": 360.0}, lambda ts: 360.0 * (ts - W0) / 3600)],
)  # fmt: skip
def test_additive_faults_add_what_they_claim(kind: str, params: dict, expected: Any) -> None:
    sensor = "R501-TT-01"  # 0.1 K resolution, far from its range ends
    _t, ts, v = series(run([fault(kind, sensor, **params)]), sensor)
    _t, ts0, v0 = series(BASE, sensor)
    assert np.array_equal(ts, ts0)
    m = inside(ts)
    assert np.allclose(v[m] - v0[m], expected(ts[m]), atol=0.15)
    assert np.array_equal(v[~m], v0[~m])


def test_noisy_sensor_is_noisier() -> None:
    sensor = "TK101-PT-01"
    _t, ts, v = series(run([fault("noisy", sensor, factor=10)]), sensor)
    _t, _ts, v0 = series(BASE, sensor)
    m = inside(ts)
    assert np.std(np.diff(v[m])) > 4 * np.std(np.diff(v0[m]))


def test_dropout_sends_nothing_in_the_window() -> None:
    _t, ts, _v = series(run([fault("dropout", "TK101-GD-01")]), "TK101-GD-01")
    assert not inside(ts).any()
    assert (ts >= W1).any()
    assert (ts < W0).any()


def test_clock_skew_shifts_timestamps() -> None:
    t, ts, _v = series(run([fault("clock_skew", "TK101-GD-01", skew_s=90)]), "TK101-GD-01")
    m = (t >= W0) & (t < W1)
    assert np.allclose(ts[m] - t[m], 90)
    assert np.allclose(ts[~m], t[~m])


def test_duplicates_are_sent_twice() -> None:
    _t, ts, _v = series(run([fault("duplicate", "TK101-GD-01")]), "TK101-GD-01")
    _t, ts0, _v0 = series(BASE, "TK101-GD-01")
    assert inside(ts).sum() == 2 * inside(ts0).sum()
    assert len(set(ts[inside(ts)])) == inside(ts0).sum()


def test_out_of_order_delivery_breaks_timestamp_order_but_loses_nothing() -> None:
    _t, ts, _v = series(run([fault("out_of_order", "TK101-GD-01", hold_s=5)]), "TK101-GD-01")
    _t, ts0, _v0 = series(BASE, "TK101-GD-01")
    assert (np.diff(ts) < 0).any()
    assert sorted(ts) == sorted(ts0)


def test_malformed_flags_only_the_window() -> None:
    steps = run([fault("malformed", "TK101-GD-01")])
    i = REGISTRY.sensor("TK101-GD-01").index
    flagged = [st.t_s for st in steps for k in np.flatnonzero(st.malformed) if st.sensor[k] == i]
    assert flagged
    assert all(W0 <= t < W1 for t in flagged)
    assert all(st.sensor[st.malformed].tolist() in ([], [i]) for st in steps)


@pytest.mark.parametrize("buffer", [False, True])
def test_gateway_offline_silences_its_unit(buffer: bool) -> None:
    ev = {"kind": "gateway_offline", "unit": "TK102", "start": W0, "duration": W1 - W0,
          "buffer": buffer}  # fmt: skip
    steps = run([ev])
    unit = np.flatnonzero(REGISTRY.unit_ids == "TK102")
    during = [st for st in steps if W0 <= st.t_s < W1]
    assert all("TK102" in st.offline_units for st in during)
    assert not any(np.isin(st.sensor, unit).any() for st in during)
    after = sum(int(np.isin(st.sensor, unit).sum()) for st in steps if st.t_s >= W1)
    base_after = sum(int(np.isin(st.sensor, unit).sum()) for st in BASE if st.t_s >= W1)
    missed = sum(int(np.isin(st.sensor, unit).sum()) for st in BASE if W0 <= st.t_s < W1)
    assert after == base_after + (missed if buffer else 0)


def test_truth_records_what_was_injected() -> None:
    events = [
        fault("stuck", "TK101-PT-02"),
        {"kind": "overfill", "unit": "TK102", "start": 10, "duration": 3600, "rate_t_h": 400},
        {"kind": "force", "sensors": ["R502-PT-01"], "value": 6.0, "start": 30, "duration": 5},
    ]
    scenario = parse_scenario({"name": "t", "events": events}, REGISTRY)
    sim = Simulation(REGISTRY, scenario, seed=1, start_ns=START_NS, dt_s=5)
    for _ in range(int(3000 / 5)):
        sim.step()
    records = {r["id"]: r for r in sim.truth.records()}
    stuck, overfill, force = records["00-stuck"], records["01-overfill"], records["02-force"]
    assert (stuck["category"], stuck["sensors"], stuck["first_knowable"]) == (
        "fault", ["TK101-PT-02"], None)  # fmt: skip
    assert stuck["start"].startswith("2026-05-28T20:27:0")  # START_NS + 20 s
    assert overfill["sensors"] == ["TK102-LT-01"]
    # 60 % -> 85 % of 105.9 t at 400 t/h: 6.6 min after the start
    h = overfill["limit_crossings"]["TK102-LT-01"]["H"]
    assert h == overfill["first_knowable"]
    delay = (datetime.fromisoformat(h) - datetime.fromisoformat(overfill["start"])).total_seconds()
    assert delay == pytest.approx(0.25 * 105.88 / 400 * 3600, abs=10)
    assert force["limit_crossings"]["R502-PT-01"] == {"HH": force["start"], "H": force["start"]}


def test_a_full_scenario_is_deterministic_too() -> None:
    scenario = load_scenario(ROOT / "examples" / "scenarios" / "comms-faults.yaml", REGISTRY)
    runs = []
    for _ in range(2):
        sim = Simulation(REGISTRY, scenario, seed=11, start_ns=START_NS, dt_s=1.0)
        runs.append([sim.step() for _ in range(600)])
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a.sensor, b.sensor)
        assert np.array_equal(a.ts_ns, b.ts_ns)
        assert np.array_equal(a.value, b.value)
        assert np.array_equal(a.malformed, b.malformed)
        assert a.offline_units == b.offline_units
