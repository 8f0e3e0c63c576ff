"""Statistical drift and shift: EWMA and two-sided CUSUM on a robust z-score.

Per sensor: a warm-up collects the first ``warmup`` usable readings and sets the
baseline to their median and MAD (x 1.4826, floored so quantised signals do not give a
zero scale). After that each reading becomes ``z = (v - centre) / scale`` (clipped) and
drives an EWMA (condition ``DRIFT``: |EWMA| past L sigma of the EWMA) and a CUSUM
(``SHIFT``: max(C+, C-) past h). One compiled pass over the sensor-sorted batch runs
both recursions, the decisions and the learning.

The baseline is frozen within a batch and then learns slowly (per reading factor
``baseline_alpha``) from readings with |z| < ``gate`` only, and not at all while DRIFT or
SHIFT is active: anomalous data never become the new normal.

A flat run (the same value more than ``flat_run`` times in a row) is skipped entirely:
on a normally noisy signal it is a stuck transmitter, not a process measurement. It must
neither become the warm-up baseline nor, held off-centre, build a CUSUM into a SHIFT:
the health detector reports it as a sensor fault instead (seen in CI: a sensor stuck
during its warm-up learnt a zero-spread baseline, then raised DRIFT when it recovered).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Transitions, from_kernel
from detectors.batch import BAD_QUALITY, Batch
from detectors.decision import Decision, emit, step
from detectors.jit import KERNEL

MAD_TO_SIGMA = 1.4826
MEAN_ABS_TO_SIGMA = 1.2533  # sigma / E|x - mu| for a normal distribution


@dataclass(frozen=True, slots=True)
class DriftParams:
    """Tuning shared by all sensors (defaults: textbook EWMA/CUSUM settings)."""

    warmup: int = 30
    lam: float = 0.1  # EWMA smoothing per reading
    ewma_l: float = 3.0  # EWMA limit in sigmas of the EWMA statistic
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    z_clip: float = 6.0
    gate: float = 3.0  # readings learnt from must have |z| below this
    baseline_alpha: float = 0.002  # per reading
    reset_fraction: float = 0.7  # deadband: clears below 70 % of the limit
    flat_run: int = 2  # repeats of the previous value after which readings are skipped

    @property
    def ewma_limit(self) -> float:
        """Control limit on the EWMA of z."""
        return self.ewma_l * float(np.sqrt(self.lam / (2 - self.lam)))


class DriftDetector(Detector):
    """EWMA (``DRIFT``) and CUSUM (``SHIFT``) per sensor on a robust baseline."""

    name = "drift"
    conditions = ("DRIFT", "SHIFT")

    def __init__(
        self,
        enabled: np.ndarray,
        scale_floor: np.ndarray,
        params: DriftParams | None = None,
        on_delay_s: np.ndarray | float = 0.0,
        off_delay_s: np.ndarray | float = 0.0,
    ) -> None:
        super().__init__(len(enabled))
        self.p = params or DriftParams()
        self.enabled = np.asarray(enabled, bool)
        self.floor = np.asarray(scale_floor, np.float64)
        self.decisions = [Decision(self.n, on_delay_s, off_delay_s) for _ in self.conditions]
        self.count = self.add_state("count", (), np.int64, 0)
        self.buf = self.add_state("warmup", (self.p.warmup,), np.float64, np.nan)
        self.centre = self.add_state("centre", (), np.float64, np.nan)
        self.absdev = self.add_state("absdev", (), np.float64, np.nan)
        self.ew = self.add_state("ewma", (), np.float64, 0.0)
        self.cp = self.add_state("cusum_pos", (), np.float64, 0.0)
        self.cn = self.add_state("cusum_neg", (), np.float64, 0.0)
        self.last = self.add_state("last_value", (), np.float64, np.nan)
        self.repeats = self.add_state("repeats", (), np.int64, 0)

    def scale(self, s: np.ndarray) -> np.ndarray:
        """Robust sigma per sensor (floored)."""
        return np.maximum(self.absdev[s] * MEAN_ABS_TO_SIGMA, self.floor[s])

    def process(self, b: Batch) -> Transitions:
        """EWMA and CUSUM of z against the baseline frozen at the start of the batch.

        Then, per sensor: warm-up buffers fill, and the baseline learns from the batch's
        in-control readings only when neither DRIFT nor SHIFT is active afterwards.
        """
        p = self.p
        params = np.array(
            [
                p.lam,
                p.ewma_limit,
                p.reset_fraction,
                p.cusum_k,
                p.cusum_h,
                p.z_clip,
                p.gate,
                p.baseline_alpha,
                float(np.sqrt(p.lam / (2 - p.lam))),
                p.ewma_l,
                float(p.flat_run),
            ]
        )
        ib, fb = self.out(len(b))
        state = (
            self.count, self.buf, self.centre, self.absdev, self.ew, self.cp, self.cn,
            self.last, self.repeats,
        )  # fmt: skip
        done = np.empty(len(b), np.int64)  # sensors whose warm-up completed in this batch
        k, n_done = _drift(
            self.bank(), *b.walk, self.enabled, self.floor, state, params, ib, fb, done,
        )  # fmt: skip
        if n_done:  # baselines from the completed warm-up buffers (median, MAD)
            baselines(self.buf, done[:n_done], self.centre, self.absdev)
        return from_kernel(ib[:k], fb[:k])

    def describe(
        self, condition: int, active: bool, value: float, threshold: float, ref: SensorRef
    ) -> str:
        """E.g. ``R501-TT-01 temperature drifting above its baseline (EWMA +3.4 sigma)``."""
        sensor = ref.sensor
        what = "drifting" if condition == 0 else "shifted"
        stat = "EWMA" if condition == 0 else "CUSUM"
        unit = "sigma" if condition == 0 else ""
        if active:
            side = "above" if value > 0 else "below"
            return (
                f"{sensor.id} {sensor.kind} {what} {side} its learnt baseline "
                f"({stat} {value:+.2f}{unit and ' ' + unit}, limit {threshold:g})"
            )
        return f"{sensor.id} {sensor.kind} back near its learnt baseline ({stat} {value:+.2f})"

    def severity(self, condition: int, ref: SensorRef) -> Severity:
        """Early warnings for the operator, not trips."""
        return "low"


@lru_cache(maxsize=8)
def sort_network(n: int) -> np.ndarray:
    """Comparators (i, j) of Batcher's odd-even merge sort for the next power of two >= n."""
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (p * 2) == (i + j + k) // (p * 2):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.array(pairs, np.int64).reshape(-1, 2)


def baselines(buf: np.ndarray, done: np.ndarray, centre: np.ndarray, absdev: np.ndarray) -> None:
    """Centre (median) and mean absolute deviation (from the MAD) of completed warm-ups.

    The same values as ``np.median`` along the rows, several times faster: every sensor's
    buffer is sorted at once, one column each, by a sorting network (branch-free
    min/max over contiguous rows) instead of one ``np.partition`` per row.
    """
    pairs = sort_network(buf.shape[1])
    work = np.full((int(pairs.max(initial=0)) + 1, len(done)), np.inf)
    _baselines(buf, done, centre, absdev, work, pairs)


@njit(**KERNEL)
def _sort_columns(work, pairs):
    for c in range(len(pairs)):
        lo, hi = work[pairs[c, 0]], work[pairs[c, 1]]
        for k in range(work.shape[1]):
            x, y = lo[k], hi[k]
            less = x < y
            lo[k] = x if less else y
            hi[k] = y if less else x


@njit(**KERNEL)
def _baselines(buf, done, centre, absdev, work, pairs):
    w = buf.shape[1]
    h = w // 2
    for k in range(len(done)):
        for j in range(w):
            work[j, k] = buf[done[k], j]
    _sort_columns(work, pairs)
    for k in range(len(done)):
        med = work[h, k] if w % 2 else (work[h - 1, k] + work[h, k]) / 2.0
        centre[done[k]] = med
        for j in range(w):
            work[j, k] = abs(buf[done[k], j] - med)
        for j in range(w, work.shape[0]):
            work[j, k] = np.inf
    _sort_columns(work, pairs)
    for k in range(len(done)):
        mad = work[h, k] if w % 2 else (work[h - 1, k] + work[h, k]) / 2.0
        absdev[done[k]] = mad * MAD_TO_SIGMA / MEAN_ABS_TO_SIGMA


@njit(**KERNEL)
def _drift(dec, groups, bounds, t, v, q, late, enabled, floor, state, params, ib, fb, done):
    count, buf, centre, absdev, ew, cp, cn, last, repeats = state
    lam, lim_e, rf, ck, ch, zc, gate, alpha, norm, ewma_l, flat_run = params
    since = dec[2]
    warmup = buf.shape[1]
    k = 0
    n_done = 0
    for g in range(len(groups)):  # one sensor's rows at a time: its state in registers
        si = groups[g]
        if not enabled[si]:
            continue
        n_seen = count[si]
        warm = n_seen >= warmup  # judged on the state before the batch
        c0 = centre[si]
        scale = max(absdev[si] * MEAN_ABS_TO_SIGMA, floor[si])
        e, p_, m_ = ew[si], cp[si], cn[si]
        prev, rep = last[si], repeats[si]
        n_acc = 0
        sum_dev = 0.0
        sum_abs = 0.0
        for r in range(bounds[g], bounds[g + 1]):
            x = v[r]
            if late[r] or q[r] == BAD_QUALITY or np.isnan(x):
                continue
            if x == prev:
                rep += 1
                if rep > flat_run:
                    continue
            else:
                prev = x
                rep = 0
            if not warm:
                if n_seen < warmup:
                    buf[si, n_seen] = x
                    n_seen += 1
                continue
            z = min(max((x - c0) / scale, -zc), zc)
            e = (1.0 - lam) * e + lam * z
            p_ = max(0.0, p_ + z - ck)
            m_ = max(0.0, m_ - z - ck)
            tr = t[r]
            code, act = step(dec, 0, si, tr, abs(e) >= lim_e, abs(e) < lim_e * rf)
            if code != 0:
                emit(ib, fb, k, si, 0, code > 0, tr, act, e / norm, ewma_l)
                k += 1
            cu = p_ if p_ >= m_ else -m_
            code, act = step(dec, 1, si, tr, abs(cu) >= ch, abs(cu) < ch * rf)
            if code != 0:
                emit(ib, fb, k, si, 1, code > 0, tr, act, cu, ch)
                k += 1
            if abs(z) < gate:
                d = x - c0
                n_acc += 1
                sum_dev += d
                sum_abs += abs(d)
        last[si], repeats[si] = prev, rep
        if warm:
            ew[si], cp[si], cn[si] = e, p_, m_
            if n_acc > 0 and since[0, si] == 0 and since[1, si] == 0:
                gain = 1.0 - (1.0 - alpha) ** n_acc
                centre[si] = c0 + gain * (sum_dev / n_acc)
                absdev[si] += gain * (sum_abs / n_acc - absdev[si])
        else:
            count[si] = n_seen
            if n_seen >= warmup and np.isnan(c0):
                done[n_done] = si
                n_done += 1
    return k, n_done
