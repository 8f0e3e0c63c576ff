"""The vectorised limit detector against a plain per-reading reference."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.limits import BAD_QUALITY, LEVELS, LimitDetector

N_SENSORS = 4
LIMITS = {
    "hh": np.array([90.0, np.nan, 50.0, 10.0]),
    "h": np.array([80.0, np.nan, 25.0, 5.0]),
    "l": np.array([20.0, np.nan, np.nan, np.nan]),
    "ll": np.array([10.0, 30.0, np.nan, np.nan]),
}
DEADBAND = np.array([2.0, 1.0, 0.0, 0.5])


def reference(readings: list[tuple[int, int, float, int]], since: dict) -> list[tuple]:
    """One reading at a time, the textbook way."""
    out = []
    for s, t, v, q in sorted(readings, key=lambda r: (r[0], r[1])):
        for level in LEVELS:
            limit = LIMITS[level.lower()][s]
            if math.isnan(limit) or q == BAD_QUALITY or math.isnan(v):
                continue
            high = level in ("HH", "H")
            band = DEADBAND[s]
            set_ = v >= limit if high else v <= limit
            reset = v < limit - band if high else v > limit + band
            active = since.get((s, level), 0) != 0
            if set_ and not active:
                since[(s, level)] = t
                out.append((s, level, True, t, v, t))
            elif reset and active:
                out.append((s, level, False, t, v, since.pop((s, level))))
    return out


def run_vectorised(det: LimitDetector, readings: list[tuple[int, int, float, int]]) -> list[tuple]:
    if not readings:
        return []
    s, t, v, q = (np.array(c) for c in zip(*readings, strict=True))
    found = det.process(s.astype(np.int64), t.astype(np.int64), v.astype(float), q.astype(np.uint8))
    return [
        (
            int(found.sensor[i]),
            LEVELS[found.level[i]],
            bool(found.active[i]),
            int(found.ts_ns[i]),
            float(found.value[i]),
            int(found.activated_ns[i]),
        )
        for i in range(len(found))
    ]


def key(t: tuple) -> tuple:
    return (t[0], t[1], t[3], t[2])


# Values right at, inside and just past each limit's deadband, where bugs hide.
EDGES = sorted(
    {
        float(x + d)
        for x in np.concatenate(list(LIMITS.values()))
        if not np.isnan(x)
        for d in (-2.5, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 2.5)
    }
)

reading = st.tuples(
    st.integers(0, N_SENSORS - 1),
    st.integers(1, 60),  # few distinct times: duplicates and disorder are common
    st.one_of(st.sampled_from(EDGES), st.floats(-10, 110, allow_nan=False), st.just(float("nan"))),
    st.sampled_from([0, 0, 0, 1, BAD_QUALITY]),
)


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.lists(reading, max_size=40), max_size=4))
def test_vectorised_equals_reference_over_random_batches(batches: list) -> None:
    det = LimitDetector(LIMITS, DEADBAND)
    since: dict = {}
    for batch in batches:  # state carries over between batches
        expected = reference(batch, since)
        got = run_vectorised(det, batch)
        assert sorted(got, key=key) == sorted(expected, key=key)


def test_hysteresis_holds_inside_the_deadband() -> None:
    det = LimitDetector(LIMITS, DEADBAND)
    # sensor 0: H=80, deadband 2 -> active at 80, still active at 78.5, clears at 77.9
    got = run_vectorised(det, [(0, 1, 80.0, 0), (0, 2, 78.5, 0), (0, 3, 77.9, 0)])
    assert [(g[1], g[2], g[3]) for g in got] == [("H", True, 1), ("H", False, 3)]
    assert got[1][5] == 1  # the clear names the activation it ends


def test_bad_quality_decides_nothing() -> None:
    det = LimitDetector(LIMITS, DEADBAND)
    assert run_vectorised(det, [(0, 1, 99.0, BAD_QUALITY), (0, 2, float("nan"), 0)]) == []


def test_snapshot_and_restore_round_trip() -> None:
    det = LimitDetector(LIMITS, DEADBAND)
    run_vectorised(det, [(0, 5, 95.0, 0), (2, 6, 30.0, 0)])
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    snap = det.snapshot(np.arange(N_SENSORS), ids)
    assert snap == {"a": {"HH": 5, "H": 5}, "c": {"H": 6}}
    fresh = LimitDetector(LIMITS, DEADBAND)
    fresh.restore(snap, {"a": 0, "b": 1, "c": 2, "d": 3})
    np.testing.assert_array_equal(fresh.active_since, det.active_since)
    # the restored detector clears the occurrence it inherited
    got = run_vectorised(fresh, [(2, 9, 1.0, 0)])
    assert got == [(2, "H", False, 9, 1.0, 6)]
