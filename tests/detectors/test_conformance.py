"""Every detector against its per-reading reference, and the contract all detectors share."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.store import state_json
from detectors.base import Detector, Transitions
from detectors.batch import BAD_QUALITY
from detectors.reference import Reading, reference_for
from detectors.suite import Suite
from tests.detectors.conftest import FACTORIES, LIMITS, N

EDGES = sorted(
    {
        float(x + d)
        for x in np.concatenate(list(LIMITS.values()))
        if not np.isnan(x)
        for d in (-2.5, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 2.5)
    }
)
reading = st.tuples(
    st.integers(0, N - 1),
    st.integers(1, 80),  # few distinct times: duplicates and disorder are common
    st.one_of(
        st.sampled_from(EDGES),
        st.floats(-10, 110, allow_nan=False),
        st.just(float("nan")),
        st.just(7.0),  # repeats: stuck sensors
    ),
    st.sampled_from([0, 0, 0, 1, BAD_QUALITY]),
)
batches = st.lists(st.lists(reading, max_size=40), max_size=5)


def scaled(batch: list, step_s: int) -> list[Reading]:
    return [(s, t * step_s * 1_000_000_000, v, q) for s, t, v, q in batch]


def run(suite: Suite, batch: list[Reading]) -> Transitions:
    cols = list(zip(*batch, strict=True)) or [[], [], [], []]
    types = (np.int64, np.int64, float, np.uint8)
    s, t, v, q = (np.array(c, dt) for c, dt in zip(cols, types, strict=True))
    return suite.process(s, t, v, q)[0][1]


def canon(rows: list) -> list:
    return sorted((r[0], r[1], r[3], r[2], r[6], round(r[4], 6), round(r[5], 6)) for r in rows)


def same(got: list, expected: list) -> None:
    g, e = canon(got), canon(expected)
    assert [x[:5] for x in g] == [x[:5] for x in e]
    for a, b in zip(g, e, strict=True):
        assert a[5:] == pytest.approx(b[5:], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=batches)
def test_vectorised_equals_reference(name: str, data: list) -> None:
    factory, step = FACTORIES[name]
    det = factory()
    suite = Suite([det], N)
    ref = reference_for(factory())
    for batch in data:  # state carries over between batches
        readings = scaled(batch, step)
        same(run(suite, readings).rows(), ref.process(readings))


@settings(max_examples=100, deadline=None)
@given(data=batches, ticks=st.lists(st.integers(1, 200), max_size=5))
def test_health_clock_ticks_match_reference(data: list, ticks: list) -> None:
    factory, _ = FACTORIES["health"]
    det, ref = factory(), reference_for(factory())
    suite = Suite([det], N)
    for batch, tick in zip(data, ticks + [0] * len(data), strict=False):
        readings = scaled(batch, 1)
        same(run(suite, readings).rows(), ref.process(readings))
        if tick:
            now = (max((r[1] for r in readings), default=0)) + tick * 1_000_000_000
            same(det.tick(now).rows(), ref.tick(now))  # type: ignore[attr-defined]


def stream(seed: int, n: int = 400, step_s: int = 1) -> list[Reading]:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, N, n)
    t = (np.arange(n) // 2 + rng.integers(0, 3, n)) * step_s * 1_000_000_000 + 10**12
    v = 50 + np.cumsum(rng.normal(0, 3, n))
    v[rng.random(n) < 0.05] = np.nan
    q = np.where(rng.random(n) < 0.05, BAD_QUALITY, 0)
    return list(zip(s.tolist(), t.tolist(), v.tolist(), q.tolist(), strict=True))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_contract(name: str) -> None:
    factory, step = FACTORIES[name]
    readings = stream(1, step_s=step)
    first, second = readings[:200], readings[200:]

    # Shapes: parallel arrays of one length, condition codes within range.
    suite = Suite([factory()], N)
    found = run(suite, first)
    det: Detector = suite.detectors[0]
    lengths = {len(getattr(found, f)) for f in found.__dataclass_fields__}
    assert len(lengths) == 1
    assert all(0 <= c < len(det.conditions) for c in found.condition)
    assert np.all(np.diff(found.ts_ns) >= 0)  # events go out in time order

    # Determinism: a fresh detector gives the same output for the same input.
    again = Suite([factory()], N)
    assert run(again, first).rows() == found.rows()

    # Snapshot/restore through JSON: the restored detector continues identically.
    snap = json.loads(state_json(suite.snapshot(np.arange(N), np.array(list("abcd"), object))))
    restored = Suite([factory()], N)
    restored.restore(snap, {"a": 0, "b": 1, "c": 2, "d": 3})
    assert run(restored, second).rows() == run(suite, second).rows()

    # NaN / bad quality decide no process condition and leave learnt state alone.
    fresh = Suite([factory()], N)
    before = {k: v.copy() for k, v in fresh.detectors[0].state().items()}
    junk = [(i % N, 10**12 + i * 10**9, math.nan if i % 2 else 1.0, BAD_QUALITY) for i in range(20)]
    out = run(fresh, junk)
    names = {fresh.detectors[0].conditions[c] for c in out.condition}
    assert all(n.startswith("FAULT_") for n in names)
    if name != "health":
        for k, v in fresh.detectors[0].state().items():
            np.testing.assert_array_equal(v, before[k], err_msg=k)
