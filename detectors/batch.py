"""A batch of readings sorted by sensor then source time, plus segmented array helpers.

Every detector works on the same sorted view: rows grouped by dense sensor index, in
source-time order inside a group. "Per sensor" recurrences become array operations over
these groups (forward fills with ``np.maximum.accumulate``, segmented cumulative sums,
a linear filter with a per-group correction); nothing loops per reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    """Sort a batch by (sensor, ts) and flag late rows against ``last_ts`` (per sensor)."""
    order = np.lexsort((ts_ns, sensor))  # stable: duplicates keep arrival order
    s = np.asarray(sensor, np.int64)[order]
    t = np.asarray(ts_ns, np.int64)[order]
    return Batch(
        s,
        t,
        np.asarray(value, np.float64)[order],
        np.asarray(quality, np.uint8)[order],
        t < last_ts[s],
    )


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


def previous(x: np.ndarray, starts: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """The previous row's value within the group; ``initial`` on a group's first row."""
    prev = np.empty_like(x)
    prev[1:] = x[:-1]
    prev[starts] = initial[starts]
    return prev


def position(starts: np.ndarray) -> np.ndarray:
    """0-based position of each row inside its group."""
    idx = np.arange(len(starts))
    first = np.maximum.accumulate(np.where(starts, idx, 0))
    return idx - first


def segmented_cumsum(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every group start (same order as a sequential sum)."""
    return segmented_accumulate(np.add, x, starts, 0.0)


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


def segmented_min_accumulate(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running minimum restarting at every group start (exact)."""
    return segmented_accumulate(np.minimum, x, starts, np.inf)


def segmented_accumulate(
    ufunc: np.ufunc, x: np.ndarray, starts: np.ndarray, fill: float
) -> np.ndarray:
    """``ufunc.accumulate`` restarting at every group start.

    Groups are padded into a 2-D array so one accumulate along the rows does them all, in
    the same order a per-reading loop would (bit-identical sums). Very uneven groups fall
    back to one accumulate per group (a loop per sensor, never per reading).
    """
    n = len(x)
    if n == 0:
        return np.asarray(x, np.float64).copy()
    first_idx = np.flatnonzero(starts)
    lengths = np.diff(np.append(first_idx, n))
    width = int(lengths.max())
    if width * len(first_idx) <= 4 * n + 4096:
        pos = position(starts)
        gid = np.cumsum(starts) - 1
        grid = np.full((len(first_idx), width), fill, np.float64)
        grid[gid, pos] = x
        out: np.ndarray = ufunc.accumulate(grid, axis=1)[gid, pos]
        return out
    res = np.empty(n, np.float64)
    for a, ln in zip(first_idx, lengths, strict=True):
        res[a : a + ln] = ufunc.accumulate(np.asarray(x[a : a + ln], np.float64))
    return res
