"""Behaviour of each detector on hand-made streams (what an operator would expect)."""

from __future__ import annotations

import numpy as np

from common.registry import load_registry
from detectors.base import Detector
from detectors.config import build_suite
from detectors.decision import Decision
from detectors.drift import DriftDetector, DriftParams
from detectors.events import condition_events
from detectors.exposure import ExposureDetector
from detectors.health import HealthDetector
from detectors.limits import LimitDetector
from detectors.suite import Suite
from tests.detectors.conftest import DEADBAND, LIMITS, N

S = 1_000_000_000
NAN = float("nan")


def feed(
    det: Detector, rows: list[tuple[int, float, float, int]], n: int = N, batch: int = 0
) -> list[tuple]:
    """rows: (sensor, t seconds, value, quality) -> (condition, active, t s, activated s).

    One batch, or batches of ``batch`` rows (a learnt baseline is set at a batch's end)."""
    suite = Suite([det], n)
    size = batch or len(rows)
    found = []
    for i in range(0, len(rows), size):
        s, t, v, q = (np.array(c) for c in zip(*rows[i : i + size], strict=True))
        found += suite.process(
            s.astype(np.int64), (t * S).astype(np.int64), v.astype(float), q.astype(np.uint8)
        )[0][1].rows()
    return [(det.conditions[c], a, ts / S, act / S) for _, c, a, ts, _, _, act in found]


def test_hysteresis_holds_inside_the_deadband() -> None:
    # sensor 0: H=80, deadband 2 -> active at 80, still active at 78.5, clears at 77.9
    got = feed(LimitDetector(LIMITS, DEADBAND), [(0, 1, 80.0, 0), (0, 2, 78.5, 0), (0, 3, 77.9, 0)])
    assert got == [("H", True, 1, 1), ("H", False, 3, 1)]


def test_on_delay_filters_a_brief_excursion_and_passes_a_long_one() -> None:
    det = LimitDetector(LIMITS, DEADBAND, on_delay_s=5.0)
    brief = [(0, t, 85.0 if 10 <= t <= 13 else 50.0, 0) for t in range(20)]
    assert feed(det, brief) == []
    det = LimitDetector(LIMITS, DEADBAND, on_delay_s=5.0)
    long = [(0, t, 85.0 if 10 <= t <= 30 else 50.0, 0) for t in range(40)]
    assert feed(det, long) == [("H", True, 15, 15), ("H", False, 31, 15)]


def test_off_delay_rides_through_a_short_dip() -> None:
    det = LimitDetector(LIMITS, DEADBAND, off_delay_s=4.0)
    values = (
        dict.fromkeys(range(10), 85.0) | {10: 50.0, 11: 50.0} | dict.fromkeys(range(12, 20), 85.0)
    )
    values |= dict.fromkeys(range(20, 30), 50.0)
    got = feed(det, [(0, t, v, 0) for t, v in values.items()])
    assert got == [("H", True, 0, 0), ("H", False, 24, 0)]


def test_k_of_n_needs_two_of_the_last_three() -> None:
    det = LimitDetector(LIMITS, DEADBAND)
    det.decisions = [Decision(N, 0.0, 0.0, k=2, window=3) for _ in det.decisions]
    values = [85.0, 50.0, 50.0, 85.0, 50.0, 85.0, 50.0, 50.0, 50.0]
    got = feed(det, [(0, t, v, 0) for t, v in enumerate(values)])
    assert got == [("H", True, 5, 5), ("H", False, 6, 5)]


def test_rate_of_change_explains_a_temperature_ramp() -> None:
    registry = load_registry("examples/plant.yaml")
    suite = build_suite(registry)
    tt = registry.sensor("TK101-TT-01")
    assert tt is not None
    t = np.arange(0, 600, 5)  # every 5 s, 10 min
    v = 20 + np.where(t > 300, (t - 300) * 4.2 / 60, 0.0)  # 4.2 degC/min after 5 min
    found = suite.process(np.full(len(t), tt.index), t * S + 10**18, v, np.zeros(len(t), np.uint8))
    events = [e for det, tr in found for e in condition_events(det, tr, registry)]
    roc = [e for e in events if e.condition == "ROC_HIGH"]
    assert roc
    assert roc[0].state == "active"
    assert roc[0].explanation.startswith("TK101-TT-01 temperature rising ")
    assert roc[0].explanation.endswith("degC/min, limit 2 degC/min")
    assert 300 < (roc[0].ts.timestamp() - 1e9) < 400  # caught within ~1.5 min of the start


def test_drift_learns_a_baseline_and_does_not_learn_the_anomaly() -> None:
    det = DriftDetector(np.ones(1, bool), np.full(1, 0.01), DriftParams(warmup=20))
    suite = Suite([det], 1)
    rng = np.random.default_rng(0)
    found_all = []
    for batch in range(30):  # 30 batches of 10 readings, 1 s apart
        t = (np.arange(10) + batch * 10) * S + 10**18
        v = 50 + rng.normal(0, 1, 10) + (8.0 if batch >= 20 else 0.0)
        found_all += suite.process(np.zeros(10, np.int64), t, v, np.zeros(10, np.uint8))[0][
            1
        ].rows()
        if batch == 19:
            centre_before = float(det.centre[0])
    names = {det.conditions[r[1]] for r in found_all if r[2]}
    assert names == {"DRIFT", "SHIFT"}
    assert abs(centre_before - 50) < 1.0
    assert abs(float(det.centre[0]) - centre_before) < 1e-9  # the shift was not learnt


def _noisy_then(rng: np.random.Generator, stuck: float, n_noisy: int, n_stuck: int) -> np.ndarray:
    return np.concatenate([50 + rng.normal(0, 1, n_noisy), np.full(n_stuck, stuck)])


def _drift_activations(det: DriftDetector, v: np.ndarray) -> list[tuple]:
    """One sensor, 1 s apart, in batches of 10; the activations only."""
    rows = [(0, float(i), float(x), 0) for i, x in enumerate(v)]
    return [g for g in feed(det, rows, n=1, batch=10) if g[1]]


def test_drift_does_not_learn_a_stuck_sensor_during_warm_up() -> None:
    # stuck after 10 of 30 warm-up readings: the flat run must not become a zero-spread
    # baseline that turns the recovered sensor's ordinary noise into DRIFT / SHIFT
    det = DriftDetector(np.ones(1, bool), np.full(1, 0.01))
    rng = np.random.default_rng(1)
    v = np.concatenate([_noisy_then(rng, 50.0, 10, 100), 50 + rng.normal(0, 1, 100)])
    assert _drift_activations(det, v) == []
    assert 0.5 < float(det.scale(np.zeros(1, np.int64))[0]) < 1.5  # sigma 1, not the 0.01 floor


def test_drift_holds_while_a_warm_sensor_is_stuck_off_centre() -> None:
    # 1 sigma off-centre: too small to alarm on at once, but the CUSUM grows by ~0.5 per
    # reading and the EWMA tends to 1 sigma, both past their limits within ~15 readings
    det = DriftDetector(np.ones(1, bool), np.full(1, 0.01))
    v = _noisy_then(np.random.default_rng(2), 51.0, 60, 300)
    assert _drift_activations(det, v) == []
    assert det.count[0] == 30  # warm: the stream was judged, not only buffered


def test_health_faults_are_apart_from_process_alarms() -> None:
    det = HealthDetector(
        np.zeros(2), np.full(2, 100.0), np.full(2, 0.5), np.full(2, 10.0), np.full(2, 3.0), 0.0
    )
    rows = [
        (0, 1, 50.0, 0),
        (0, 2, NAN, 2),  # Sparkplug DEATH: bad quality, no value
        (0, 3, 50.5, 0),
        (1, 1, 150.0, 0),  # outside the physical range
        (1, 2, 40.0, 0),
    ] + [(1, t, 40.0, 0) for t in range(3, 16)]  # flat: stuck after 10 s
    got = feed(det, rows, n=2)
    assert ("FAULT_OFFLINE", True, 2, 2) in got
    assert ("FAULT_OFFLINE", False, 3, 2) in got
    assert not any(g[0] == "FAULT_QUALITY" for g in got)
    assert ("FAULT_RANGE", True, 1, 1) in got
    assert ("FAULT_STUCK", True, 13, 13) in got  # first repeat at t=3, + 10 s
    assert all(g[0].startswith("FAULT_") for g in got)


def test_stale_from_the_clock_and_from_a_gap_share_the_event_id() -> None:
    def make() -> tuple[Suite, HealthDetector]:
        d = HealthDetector(
            np.zeros(1), np.ones(1), np.full(1, NAN), np.full(1, NAN), np.full(1, 3.0)
        )
        return Suite([d], 1), d

    one = np.zeros(1, np.int64)
    q = np.zeros(1, np.uint8)
    clocked, det = make()
    clocked.process(one, np.array([10 * S]), np.array([0.5]), q)
    assert len(det.tick(12 * S)) == 0
    raised = det.tick(14 * S).rows()
    assert [(r[2], r[6]) for r in raised] == [(True, 13 * S)]
    cleared = clocked.process(one, np.array([20 * S]), np.array([0.5]), q)[0][1].rows()
    gap, _ = make()
    gap.process(one, np.array([10 * S]), np.array([0.5]), q)
    both = gap.process(one, np.array([20 * S]), np.array([0.5]), q)[0][1].rows()
    assert [(r[2], r[6]) for r in both] == [(True, 13 * S), (False, 13 * S)]
    assert cleared == both[1:]


def test_stel_of_benzene_at_twelve_mg_m3() -> None:
    det = ExposureDetector(np.array([10.0]), np.array([6.0]), np.array([3.0]))
    t = np.arange(0, 1200)
    got = feed(det, [(0, float(x), 12.0, 0) for x in t], n=1)
    stel = [g for g in got if g[0] == "STEL"]
    # 12 x T / 900 s >= 10 once T >= 750 s (the window is resolved to 1-min buckets)
    assert stel
    assert stel[0][1]
    assert 700 <= stel[0][2] <= 800
    assert not any(g[0] == "TWA" for g in got)  # 20 min at 2 x TWA is below 8 h x 6


def test_example_plant_suite_names_and_defaults() -> None:
    registry = load_registry("examples/plant.yaml")
    suite = build_suite(registry)
    names = [c for d in suite.detectors for c in d.conditions]
    assert len(names) == len(set(names))
    health = suite.by_name("health")
    assert all(c.startswith("FAULT_") for c in health.conditions)
    benzene = registry.sensor("TK601-GD-01")
    assert benzene is not None
    exposure = suite.by_name("exposure")
    assert isinstance(exposure, ExposureDetector)
    assert exposure.limit[:, benzene.index].tolist() == [10.0, 6.0]
    assert suite.state_bytes() / len(registry) < 2048
