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
    """Readings sorted by (sensor, ts); ``late`` rows are older than the sensor's last one.

    ``groups`` lists the sensors present (ascending) and ``bounds`` their row ranges: the
    rows of ``groups[g]`` are ``bounds[g]:bounds[g + 1]``. The kernels walk the batch one
    sensor's group at a time, so per-sensor settings and state stay in registers.
    """

    s: np.ndarray  # dense sensor index, int64
    t: np.ndarray  # source time, int64 epoch ns
    v: np.ndarray  # float64
    q: np.ndarray  # uint8 quality
    late: np.ndarray  # bool: older than a reading already processed for this sensor
    groups: np.ndarray  # int64: sensor of each group, ascending
    bounds: np.ndarray  # int64: first row of each group, then len(s)

    @property
    def usable(self) -> np.ndarray:
        """Rows that may decide a process condition: in time, good or uncertain, not NaN."""
        return ~self.late & (self.q != BAD_QUALITY) & ~np.isnan(self.v)

    @property
    def walk(self) -> tuple[np.ndarray, ...]:
        """What every per-group kernel takes first: (groups, bounds, t, v, q, late)."""
        return (self.groups, self.bounds, self.t, self.v, self.q, self.late)

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
    v = np.ascontiguousarray(value, np.float64)
    q = np.ascontiguousarray(quality, np.uint8)
    n, m = len(s), len(last_ts)
    if n and (s.min() < 0 or s.max() >= m):
        raise IndexError(f"sensor index outside 0..{m - 1} in a batch of {n} readings")
    if n * 4 >= m:  # counting sort: O(readings + sensors)
        out = _counting_sort(s, t, v, q, last_ts)
        if out[-1]:
            return Batch(*out[:-1])
        # a long group out of time order: leave it to numpy
    return Batch(*_gather(np.lexsort((t, s)), s, t, v, q, last_ts))


@njit(cache=True, nogil=True)
def _counting_sort(s, t, v, q, last_ts):
    """Stable sort by sensor (counting sort, columns scattered directly), then by time.

    Groups out of time order are insertion-sorted when short; the last item is False
    when a long one is (the caller then sorts with numpy).
    """
    n, m = len(s), len(last_ts)
    pos = np.zeros(m + 1, np.int64)
    for i in range(n):
        pos[s[i] + 1] += 1
    n_groups = 0
    for j in range(m):
        if pos[j + 1] > 0:
            n_groups += 1
        pos[j + 1] += pos[j]
    groups = np.empty(n_groups, np.int64)
    bounds = np.empty(n_groups + 1, np.int64)
    g = 0
    for j in range(m):
        if pos[j + 1] > pos[j]:
            groups[g] = j
            bounds[g] = pos[j]
            g += 1
    bounds[n_groups] = n
    so = np.empty(n, np.int64)
    to = np.empty(n, np.int64)
    vo = np.empty(n, np.float64)
    qo = np.empty(n, np.uint8)
    late = np.empty(n, np.bool_)
    for i in range(n):  # scatter: reads in order, each group's rows in arrival order
        j = s[i]
        p = pos[j]
        pos[j] = p + 1
        to[p] = t[i]
        vo[p] = v[i]
        qo[p] = q[i]
    for g in range(n_groups):
        a, b = bounds[g], bounds[g + 1]
        sg = groups[g]
        ordered = True
        for r in range(a + 1, b):
            if to[r] < to[r - 1]:
                ordered = False
                break
        if not ordered:
            if b - a > 32:
                return so, to, vo, qo, late, groups, bounds, False
            for r in range(a + 1, b):  # insertion sort: stable, cheap on short groups
                tk, vk, qk = to[r], vo[r], qo[r]
                j = r - 1
                while j >= a and to[j] > tk:
                    to[j + 1], vo[j + 1], qo[j + 1] = to[j], vo[j], qo[j]
                    j -= 1
                to[j + 1], vo[j + 1], qo[j + 1] = tk, vk, qk
        last = last_ts[sg]
        for r in range(a, b):
            so[r] = sg
            late[r] = to[r] < last
    return so, to, vo, qo, late, groups, bounds, True


@njit(cache=True, nogil=True)
def _gather(order, s, t, v, q, last_ts):
    n = len(order)
    so = np.empty(n, np.int64)
    to = np.empty(n, np.int64)
    vo = np.empty(n, np.float64)
    qo = np.empty(n, np.uint8)
    late = np.empty(n, np.bool_)
    n_groups = 0
    for i in range(n):
        k = order[i]
        so[i] = s[k]
        to[i] = t[k]
        vo[i] = v[k]
        qo[i] = q[k]
        late[i] = t[k] < last_ts[s[k]]
        if i == 0 or so[i] != so[i - 1]:
            n_groups += 1
    groups = np.empty(n_groups, np.int64)
    bounds = np.empty(n_groups + 1, np.int64)
    g = 0
    for i in range(n):
        if i == 0 or so[i] != so[i - 1]:
            groups[g] = so[i]
            bounds[g] = i
            g += 1
    bounds[n_groups] = n
    return so, to, vo, qo, late, groups, bounds


@njit(cache=True, nogil=True)
def advance_clock(last_ts, groups, bounds, t, late):
    """``last_ts[s] = max(last_ts[s], t)`` over a sorted batch's in-time rows.

    A group is in time order and its late rows come first, so its last row decides.
    """
    for g in range(len(groups)):
        r = bounds[g + 1] - 1
        if not late[r]:
            last_ts[groups[g]] = t[r]


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
