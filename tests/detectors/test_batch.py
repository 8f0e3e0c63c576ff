"""The shared sort: every path (counting sort, insertion-sorted groups, numpy fallback)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.batch import sort_batch


def expected(s: np.ndarray, t: np.ndarray, v: np.ndarray, q: np.ndarray, last: np.ndarray):
    order = np.lexsort((t, s))  # stable: duplicate times keep arrival order
    so = s[order]
    return so, t[order], v[order], q[order], t[order] < last[so]


def check(s: np.ndarray, t: np.ndarray, v: np.ndarray, q: np.ndarray, last: np.ndarray) -> None:
    b = sort_batch(s, t, v, q, last)
    for got, want in zip((b.s, b.t, b.v, b.q, b.late), expected(s, t, v, q, last), strict=True):
        np.testing.assert_array_equal(got, want)
    assert b.bounds[0] == 0
    assert b.bounds[-1] == len(s)
    np.testing.assert_array_equal(b.groups, np.unique(s))
    for g, sensor in enumerate(b.groups):
        assert np.all(b.s[b.bounds[g] : b.bounds[g + 1]] == sensor)


@settings(max_examples=200, deadline=None)
@given(
    m=st.integers(1, 12),
    rows=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 6)), max_size=120),
)
def test_sort_matches_lexsort(m: int, rows: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(len(rows))
    s = np.array([a % m for a, _ in rows], np.int64)
    t = np.array([b for _, b in rows], np.int64)
    v = rng.normal(size=len(s))  # distinct values: the order of duplicates is visible
    q = rng.integers(0, 3, len(s)).astype(np.uint8)
    last = rng.integers(0, 5, m).astype(np.int64)
    check(s, t, v, q, last)


@pytest.mark.parametrize("group", [5, 40, 300])  # insertion sort, and numpy for long groups
def test_groups_out_of_time_order(group: int) -> None:
    rng = np.random.default_rng(group)
    m = 7
    s = np.repeat(np.arange(m), group)
    rng.shuffle(s)
    t = rng.integers(0, group // 2 + 1, len(s))
    check(s, t, rng.normal(size=len(s)), np.zeros(len(s), np.uint8), np.zeros(m, np.int64))


def test_few_readings_of_many_sensors() -> None:  # numpy path: fewer readings than sensors / 4
    s = np.array([900, 3, 900, 3], np.int64)
    t = np.array([5, 4, 1, 4], np.int64)
    check(s, t, np.arange(4.0), np.zeros(4, np.uint8), np.full(1000, 2, np.int64))


def test_empty_batch_and_bad_sensor_index() -> None:
    e = np.array([], np.int64)
    b = sort_batch(e, e, np.array([]), np.array([], np.uint8), np.zeros(3, np.int64))
    assert len(b) == 0
    assert len(b.groups) == 0
    assert list(b.bounds) == [0]
    with pytest.raises(IndexError):
        sort_batch(np.array([3]), np.array([1]), np.array([1.0]), np.array([0]), np.zeros(3))
