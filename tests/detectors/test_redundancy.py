"""Gas voting per unit and disagreement between redundant sensors."""

from __future__ import annotations

import numpy as np

from common.registry import load_registry
from detectors.redundancy import GroupDetector, groups_from_registry
from detectors.settings import DetectorSettings
from detectors.worker import Worker

S = 1_000_000_000
REGISTRY = load_registry("examples/plant.yaml")


def idx(sensor: str) -> int:
    ref = REGISTRY.sensor(sensor)
    assert ref is not None
    return ref.index


def cols(rows: list[tuple[str, int, float]]) -> dict[str, np.ndarray]:
    return {
        "sensor": np.array([idx(s) for s, _, _ in rows]),
        "ts": np.array([10**18 + t * S for _, t, _ in rows]),
        "value": np.array([v for _, _, v in rows], float),
        "quality": np.zeros(len(rows), np.uint8),
    }


def test_groups_from_the_example_plant() -> None:
    groups = groups_from_registry(REGISTRY)
    votes = {g.key: g for g in groups if g.condition == "GAS_VOTE"}
    assert len(votes["TK101"].members) == 6
    assert votes["TK101"].k == 2
    redundant = {g.key for g in groups if g.condition == "FAULT_DISAGREE"}
    assert redundant == {"TK101-PT", "R501-TT", "R502-TT"}


def test_one_detector_alone_does_not_vote_two_do() -> None:
    worker = Worker(DetectorSettings(), REGISTRY)
    gas = [f"R502-GD-0{i}" for i in range(1, 5)]
    rows = [(g, 0, 2.0) for g in gas]
    rows += [("R502-GD-01", t, 30.0) for t in range(1, 10)]  # one detector high: no vote
    rows += [("R502-GD-02", t, 27.0) for t in range(10, 20)]  # a second one: vote
    rows += [(g, 30, 1.0) for g in gas]
    events = [e for e in worker.detect(cols(rows)) if e.detector == "redundancy"]
    assert [(e.condition, e.state) for e in events] == [
        ("GAS_VOTE", "active"),
        ("GAS_VOTE", "cleared"),
    ]
    assert events[0].ts.timestamp() == 1e9 + 10
    assert events[0].severity == "critical"
    assert set(events[0].sensors) == set(gas)


def test_redundant_pair_disagreeing_for_thirty_seconds_is_a_fault() -> None:
    det = GroupDetector(
        [g for g in groups_from_registry(REGISTRY) if g.key == "R501-TT"], len(REGISTRY)
    )
    a, b = idx("R501-TT-01"), idx("R501-TT-02")
    t = np.arange(0, 60)
    s = np.concatenate([np.full(60, a), np.full(60, b)])
    tt = 10**18 + np.concatenate([t, t]) * S
    v = np.concatenate([np.full(60, 80.0), np.where(t < 10, 80.2, 90.0)])  # 10 degC apart from t=10
    order = np.lexsort((tt, s))
    found = det.process(s[order], tt[order], v[order], np.ones(120, bool)).rows()
    assert [(r[2], r[6]) for r in found] == [(True, 10**18 + 40 * S)]  # on-delay 30 s
    snap = det.snapshot(0)
    twin = GroupDetector(det.groups, len(REGISTRY))
    twin.restore(0, snap)
    assert twin.decision.active_since[0] == det.decision.active_since[0]
