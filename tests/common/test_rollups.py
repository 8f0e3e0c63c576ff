"""The numpy rollups of the write path against a plain per-group reference."""

from __future__ import annotations

import numpy as np
import pytest

from common import rollups

NS = 1_000_000_000


def reference(sensor, unit, unit_ids, ts, value, width):  # type: ignore[no-untyped-def]
    """Group row by row, the way the SQL rollups define it (a loop: test only)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i in range(len(ts)):
        groups.setdefault((int(sensor[i]), int(ts[i]) // width * width), []).append(i)
    out = []
    for (s, b), rows in sorted(groups.items()):
        vals = [value[i] for i in rows if not np.isnan(value[i])]
        last = max(rows, key=lambda i: ts[i])
        out.append(
            (
                b,
                s,
                min(unit_ids[unit[i]] for i in rows),
                len(vals),
                sum(vals) if vals else None,
                min(vals) if vals else None,
                max(vals) if vals else None,
                None if np.isnan(value[last]) else value[last],
                int(ts[last]),
            )
        )
    return out


@pytest.mark.parametrize("width", [rollups.MINUTE_NS, rollups.HOUR_NS])
def test_fold_matches_a_per_group_reference(width: int) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    sensor = rng.integers(0, 7, n)
    ts = 1_790_000_000 * NS + rng.integers(0, 3 * 3600, n) * NS + rng.integers(0, 1000, n) * 1000
    value = rng.normal(0, 1, n)
    value[rng.random(n) < 0.1] = np.nan
    value[(sensor == 3) & (ts // width % 2 == 0)] = np.nan  # whole buckets without a value
    unit_ids = ["U-b", "U-a", "U-c"]  # codes deliberately not in id order
    unit = rng.integers(0, 3, n)
    order = np.lexsort((ts, sensor))
    sensor, ts, value, unit = sensor[order], ts[order], value[order], unit[order]
    rank = np.empty(3, np.int64)
    rank[np.argsort(np.array(unit_ids, dtype=object))] = np.arange(3)
    assert rollups.is_key_sorted(sensor, ts)
    got = rollups.fold(sensor, unit, rank, ts, value, width)
    want = reference(sensor, unit, unit_ids, ts, value, width)
    assert len(got.bucket_ns) == len(want)

    def null(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    for k, w in enumerate(want):
        assert (int(got.bucket_ns[k]), int(got.sensor[k]), unit_ids[got.unit[k]]) == w[:3]
        assert int(got.samples[k]) == w[3]
        s = null(got.value_sum[k])
        assert s == (None if w[4] is None else pytest.approx(w[4]))
        assert (null(got.value_min[k]), null(got.value_max[k])) == w[5:7]
        assert null(got.value_last[k]) == w[7]
        assert int(got.last_ns[k]) == w[8]


def test_is_key_sorted() -> None:
    assert rollups.is_key_sorted(np.array([0, 0, 1]), np.array([1, 2, 0]))
    assert not rollups.is_key_sorted(np.array([0, 0, 1]), np.array([2, 1, 0]))
    assert not rollups.is_key_sorted(np.array([1, 0]), np.array([0, 1]))
    assert rollups.is_key_sorted(np.array([], np.int64), np.array([], np.int64))
