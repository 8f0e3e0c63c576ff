"""Per-sensor time-bucket aggregates of a batch of readings, in numpy.

The write path (common/store.py) folds a batch it has just stored into the rollup
tables (``readings_1m_raw`` / ``readings_1h_raw`` behind the ``readings_1m`` /
``readings_1h`` views, plain PostgreSQL). Aggregating here, on rows already sorted
by (sensor key, time), sends one row per sensor and bucket to the database
instead of grouping the whole batch there. The semantics are those of the SQL rollups
(migration 0004): ``samples`` counts non-NULL values; sum/min/max ignore NULLs and are
NULL when a bucket has none; ``value_last`` is the value (maybe NULL) of the latest
reading and ``last_time`` its time; ``unit`` is the smallest unit id of the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MINUTE_NS = 60 * 1_000_000_000
HOUR_NS = 60 * MINUTE_NS


@dataclass(frozen=True, slots=True)
class Buckets:
    """One row per (sensor, bucket); NaN stands for SQL NULL in the float columns."""

    bucket_ns: np.ndarray
    sensor: np.ndarray  # codes (or sensor keys), as given
    unit: np.ndarray  # codes, as given (empty when fold() was given no units)
    samples: np.ndarray
    value_sum: np.ndarray
    value_min: np.ndarray
    value_max: np.ndarray
    value_last: np.ndarray
    last_ns: np.ndarray


def is_key_sorted(sensor: np.ndarray, ts_ns: np.ndarray) -> bool:
    """True when rows are ordered by (sensor code, time)."""
    if len(sensor) < 2:
        return True
    ds = np.diff(sensor)
    return bool(np.all((ds > 0) | ((ds == 0) & (np.diff(ts_ns) >= 0))))


def fold(
    sensor: np.ndarray,
    unit: np.ndarray | None,
    unit_rank: np.ndarray | None,
    ts_ns: np.ndarray,
    value: np.ndarray,
    width_ns: int,
) -> Buckets:
    """Aggregate rows sorted by (sensor, time) into buckets of ``width_ns``.

    ``unit_rank[code]`` orders the unit codes as their ids sort (for the smallest id).
    Without units (``None``, the write path since migration 0042: the rollup tables
    take a sensor's unit from ``sensor_keys``) the ``unit`` column is left empty.
    Buckets start at multiples of ``width_ns`` from the Unix epoch, which is what
    ``time_bucket`` gives for widths that divide a day (its origin is a midnight).
    """
    n = len(ts_ns)
    bucket = ts_ns // width_ns * width_ns
    new = np.ones(n, bool)
    new[1:] = (sensor[1:] != sensor[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n) - 1
    has = ~np.isnan(value)
    samples = np.add.reduceat(has.astype(np.int64), starts)
    value_sum = np.add.reduceat(np.where(has, value, 0.0), starts)
    value_sum[samples == 0] = np.nan
    if unit is None or unit_rank is None:
        unit_of_bucket = np.zeros(0, np.int64)
    else:
        rank = np.minimum.reduceat(unit_rank[unit], starts)
        unit_of_bucket = np.argsort(unit_rank)[rank]
    return Buckets(
        bucket_ns=bucket[starts],
        sensor=sensor[starts],
        unit=unit_of_bucket,
        samples=samples,
        value_sum=value_sum,
        value_min=np.fmin.reduceat(value, starts),  # NaN only when all are NaN
        value_max=np.fmax.reduceat(value, starts),
        value_last=value[ends],
        last_ns=ts_ns[ends],
    )
