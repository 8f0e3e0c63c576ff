"""A batch of readings sorted by sensor then source time, plus segmented array helpers.

Every detector works on the same sorted view: rows grouped by dense sensor index, in
source-time order inside a group, sorted once per batch and shared by all detectors. The
per-sensor detectors walk this view once in a compiled kernel (numba); the numpy helpers
below serve the per-unit detectors (forward fills, EWMA prefilter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

BAD_QUALITY = 2


@dataclass(frozen=True, slots=True)
class Batch:
    """Readings sorted by (sensor, ts); ``late`` rows are older than the sensor's last one."""

    s: np.ndarray  # dense sensor index, int64
    t: np.ndarray  # source time, int64 epoch ns
    v: np.ndarray  # float64
    q: np.ndarray  # uint8 quality
    late: np.ndarray  # bool: older than a reading already processed for this sensor

    @property
    def usable(self) -> np.ndarray:
        """Rows that may decide a process condition: in time, good or uncertain, not NaN."""
        return ~self.late & (self.q != BAD_QUALITY) & ~np.isnan(self.v)

    def __len__(self) -> int:
        return len(self.s)


def sort_batch(
    sensor: np.ndarray,
    ts_ns: np.ndarray,
    value: np.ndarray,
    quality: np.ndarray,
    last_ts: np.ndarray,
) -> Batch:
    """Sort a batch by (sensor, ts) and flag late rows against ``last_ts`` (per sensor).

    Stable: duplicate timestamps keep arrival order (the order ``np.lexsort`` gives).
    Raises IndexError for a sensor index outside ``last_ts``.
    """
    s = np.ascontiguousarray(sensor, np.int64)
    t = np.ascontiguousarray(ts_ns, np.int64)
    n, m = len(s), len(last_ts)
    if n and (s.min() < 0 or s.max() >= m):
        raise IndexError(f"sensor index outside 0..{m - 1} in a batch of {n} readings")
    order = None
    if n * 4 >= m:  # counting sort: O(readings + sensors)
        order, ok = _counting_order(s, t, m)
        if not ok:  # a long group out of time order: leave it to numpy
            order = None
    if order is None:
        order = np.lexsort((t, s))
    so, to, vo, qo, late = _gather(
        order,
        s,
        t,
        np.ascontiguousarray(value, np.float64),
        np.ascontiguousarray(quality, np.uint8),
        last_ts,
    )
    return Batch(so, to, vo, qo, late)


@njit(cache=True, nogil=True)
def _counting_order(s, t, m):
    """Stable order by sensor (counting sort), then by time inside each sensor's group.

    Groups out of time order are insertion-sorted when short; ``ok`` is False when a
    long one is (the caller then sorts with numpy).
    """
    n = len(s)
    start = np.zeros(m + 1, np.int64)
    for i in range(n):
        start[s[i] + 1] += 1
    for j in range(m):
        start[j + 1] += start[j]
    order = np.empty(n, np.int64)
    for i in range(n):
        order[start[s[i]]] = i
        start[s[i]] += 1
    a = 0
    while a < n:
        sa = s[order[a]]
        b = a + 1
        ordered = True
        while b < n and s[order[b]] == sa:
            if t[order[b]] < t[order[b - 1]]:
                ordered = False
            b += 1
        if not ordered:
            if b - a > 32:
                return order, False
            for i in range(a + 1, b):  # insertion sort: stable, cheap on short groups
                key = order[i]
                tk = t[key]
                j = i - 1
                while j >= a and t[order[j]] > tk:
                    order[j + 1] = order[j]
                    j -= 1
                order[j + 1] = key
        a = b
    return order, True


@njit(cache=True, nogil=True)
def _gather(order, s, t, v, q, last_ts):
    n = len(order)
    so = np.empty(n, np.int64)
    to = np.empty(n, np.int64)
    vo = np.empty(n, np.float64)
    qo = np.empty(n, np.uint8)
    late = np.empty(n, np.bool_)
    for i in range(n):
        k = order[i]
        so[i] = s[k]
        to[i] = t[k]
        vo[i] = v[k]
        qo[i] = q[k]
        late[i] = t[k] < last_ts[s[k]]
    return so, to, vo, qo, late


@njit(cache=True, nogil=True)
def advance_clock(last_ts, s, t, late):
    """``last_ts[s] = max(last_ts[s], t)`` over a sorted batch's in-time rows."""
    for i in range(len(s)):
        if not late[i] and t[i] > last_ts[s[i]]:
            last_ts[s[i]] = t[i]


def group_starts(s: np.ndarray) -> np.ndarray:
    """True on the first row of each sensor's group (rows sorted by sensor)."""
    starts = np.ones(len(s), bool)
    starts[1:] = s[1:] != s[:-1]
    return starts


def group_ends(s: np.ndarray) -> np.ndarray:
    """True on the last row of each sensor's group."""
    ends = np.ones(len(s), bool)
    ends[:-1] = s[1:] != s[:-1]
    return ends


def ffill(
    decided: np.ndarray, values: np.ndarray, starts: np.ndarray, initial: np.ndarray
) -> np.ndarray:
    """Per-group forward fill: the last decided value, else ``initial`` (aligned to rows)."""
    n = len(decided)
    idx = np.arange(n)
    anchor = decided | starts
    vals = np.where(decided, values, initial)
    last = np.maximum.accumulate(np.where(anchor, idx, -1))
    return vals[last]


def ewma(x: np.ndarray, starts: np.ndarray, alpha: float, initial: np.ndarray) -> np.ndarray:
    """``y_i = (1-alpha) y_{i-1} + alpha x_i`` per group, starting from ``initial`` (per row).

    One ``lfilter`` over the whole array, then the leak from the previous group is replaced
    by the group's own initial value: ``y += a^(k+1) (initial - y_before_group)``. Stable:
    the correction factor only shrinks.
    """
    # Imported here: scipy.signal takes seconds to import, which would delay the worker's
    # start (and its signal handlers) for a function first needed on the first batch.
    from scipy.signal import lfilter

    n = len(x)
    if n == 0:
        return np.array([], np.float64)
    a = 1.0 - alpha
    y, _ = lfilter([alpha], [1.0, -a], x, zi=[a * float(initial[0])])
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, idx, 0))
    before = np.where(first > 0, y[np.maximum(first - 1, 0)], initial[0])
    k = idx - first
    return np.asarray(y + a ** (k + 1) * (initial - before), np.float64)
