"""The load generator's ledger and schedule, element-wise equal to the per-reading formulas."""

from __future__ import annotations

import numpy as np

from simulators.load import Ledger, _by_unit, boundary, value_of


def test_ledger_books_what_the_per_reading_formulas_give() -> None:
    n, rate, start_ms = 37, 1234.5, 1_795_974_869_375.0
    book = Ledger(n)
    want = [[0, 0, 0] for _ in range(n)]
    # windows of at most n readings (each sensor once) and longer ones (a backlog)
    for lo, hi in [(0, 30), (30, 67), (67, 68), (68, 200), (200, 5000), (5000, 5037)]:
        j, ts, centi = book.add(np.arange(lo, hi), start_ms, rate)
        for k, seq in enumerate(range(lo, hi)):
            t, v = int(start_ms + seq * 1000 / rate), value_of(seq)
            assert (int(j[k]), int(ts[k]), float(centi[k] / 100)) == (seq % n, t, v)
            row = want[seq % n]
            row[0] += 1
            row[1] += t
            row[2] += round(v * 100)
    assert book.as_dict([f"S{i}" for i in range(n)]) == {f"S{i}": want[i] for i in range(n)}


def test_readings_grouped_by_unit_keep_their_order() -> None:
    groups = _by_unit(np.array([3, 1, 3, 2, 1, 3]))
    assert [g.tolist() for g in groups] == [[1, 4], [3], [0, 2, 5]]


def test_unit_boundaries_of_a_schedule() -> None:
    # a worker's sensors: units of 100, 100 and 30 (n = 230), reading s of sensor s % n
    units_at, n = np.array([0, 100, 200]), 230
    assert boundary(0, units_at, n) == 0
    assert boundary(99, units_at, n) == 0
    assert boundary(100, units_at, n) == 100
    assert boundary(229, units_at, n) == 200
    assert boundary(230 + 150, units_at, n) == 330
    assert boundary(0, units_at, n, after=True) == 100
    assert boundary(150, units_at, n, after=True) == 200
    assert boundary(210, units_at, n, after=True) == 230
