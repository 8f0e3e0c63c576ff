"""Voting, disagreement and the unit PCA detector against per-reading references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.batch import sort_batch
from detectors.multivariate import UnitMspc, fit_pca
from detectors.redundancy import Group, GroupDetector
from detectors.reference import GroupReference, MspcReference
from tests.detectors.test_conformance import same

S = 1_000_000_000
N = 5
GROUPS = [
    Group("U1", "GAS_VOTE", np.array([0, 1, 2]), np.array([25.0, 25.0, 10.0]), 2),
    Group("P", "FAULT_DISAGREE", np.array([3, 4]), np.array([5.0, 5.0])),
]

reading = st.tuples(
    st.integers(0, N - 1),
    st.integers(1, 60),
    st.one_of(st.floats(0, 60, allow_nan=False), st.sampled_from([10.0, 25.0, 30.0])),
    st.booleans(),  # usable
)
batches = st.lists(st.lists(reading, max_size=30), max_size=4)


def run(det, batch: list, last: np.ndarray) -> tuple[list, list]:
    cols = list(zip(*batch, strict=True)) or [[], [], [], []]
    s = np.array(cols[0], np.int64)
    t = np.array(cols[1], np.int64) * S
    v = np.array(cols[2], float)
    q = np.where(np.array(cols[3], bool), 0, 2).astype(np.uint8)
    b = sort_batch(s, t, v, q, last)
    got = det.process(b.s, b.t, b.v, b.usable).rows()
    usable = [
        (int(a), int(c), float(x)) for a, c, x, u in zip(b.s, b.t, b.v, b.usable, strict=True) if u
    ]
    if len(b):
        np.maximum.at(last, b.s, b.t)
    return got, usable


@settings(max_examples=150, deadline=None)
@given(data=batches)
def test_groups_equal_reference(data: list) -> None:
    det = GroupDetector(GROUPS, N)
    det.decision.on_ns[1] = 3 * S
    ref = GroupReference(det)
    last = np.zeros(N, np.int64)
    for batch in data:
        got, usable = run(det, batch, last)
        same(got, ref.process(usable))


def test_mspc_equals_reference_on_random_streams() -> None:
    rng = np.random.default_rng(0)
    base = np.sin(np.arange(400) / 15)
    x = np.column_stack([base, 2 * base, -base]) + rng.normal(0, 0.05, (400, 3))
    model = fit_pca(x + 20, ("a", "b", "c"))
    for seed in range(20):
        det = UnitMspc({"a": 0, "b": 1, "c": 2}, N, {"U": (1, model)})
        ref = MspcReference(det)
        last = np.zeros(N, np.int64)
        r = np.random.default_rng(seed)
        for k in range(6):  # normal and broken patterns in turn: alarms rise and clear
            n = 40
            sensor = r.integers(0, N, n)
            t = np.sort(r.integers(k * 60, k * 60 + 60, n))
            base = np.sin(t / 15)
            coef = np.array([1.0, 2.0, -1.0 if k % 2 == 0 else 1.0, 0.0, 0.0])
            value = 20 + coef[sensor] * base + r.normal(0, 0.05, n)
            batch = list(
                zip(
                    sensor.tolist(),
                    t.tolist(),
                    value.tolist(),
                    (r.random(n) > 0.1).tolist(),
                    strict=True,
                )
            )
            got, usable = run(det, batch, last)
            same(got, ref.process(usable))
