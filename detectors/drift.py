"""Statistical drift and shift: EWMA and two-sided CUSUM on a robust z-score.

Per sensor: a warm-up collects the first ``warmup`` usable readings and sets the
baseline to their median and MAD (x 1.4826, floored so quantised signals do not give a
zero scale). After that each reading becomes ``z = (v - centre) / scale`` (clipped) and
drives an EWMA (condition ``DRIFT``: |EWMA| past L sigma of the EWMA) and a CUSUM
(``SHIFT``: max(C+, C-) past h). The CUSUM recursion ``C = max(0, C + z - k)`` is
``cumsum - running min`` per sensor, the EWMA one ``lfilter`` over the whole batch.

The baseline is frozen within a batch and then learns slowly (per reading factor
``baseline_alpha``) from readings with |z| < ``gate`` only, and not at all while DRIFT or
SHIFT is active: anomalous data never become the new normal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Score
from detectors.batch import (
    Batch,
    ewma,
    group_ends,
    group_starts,
    position,
    segmented_cumsum,
    segmented_min_accumulate,
)
from detectors.decision import Decision

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
        self._z: np.ndarray | None = None

    def scale(self, s: np.ndarray) -> np.ndarray:
        """Robust sigma per sensor (floored)."""
        return np.maximum(self.absdev[s] * MEAN_ABS_TO_SIGMA, self.floor[s])

    def score(self, b: Batch) -> Iterator[Score]:
        """EWMA and CUSUM of z against the baseline frozen at the start of the batch."""
        p = self.p
        valid = b.usable & self.enabled[b.s] & (self.count[b.s] >= p.warmup)
        rows = np.flatnonzero(valid)
        self._z = None
        if len(rows) == 0:
            return
        s = b.s[rows]
        starts, ends = group_starts(s), group_ends(s)
        z = np.clip((b.v[rows] - self.centre[s]) / self.scale(s), -p.z_clip, p.z_clip)
        e = ewma(z, starts, p.lam, self.ew[s])
        cp = _cusum(z - p.cusum_k, starts, self.cp[s])
        cn = _cusum(-z - p.cusum_k, starts, self.cn[s])
        last = s[ends]
        self.ew[last], self.cp[last], self.cn[last] = e[ends], cp[ends], cn[ends]
        full_z = np.full(len(b), np.nan)
        full_z[rows] = z
        self._z = full_z
        lim_e, lim_c = p.ewma_limit, p.cusum_h
        ew_full = np.zeros(len(b))
        ew_full[rows] = e
        cu_full = np.zeros(len(b))
        cu_full[rows] = np.where(cp >= cn, cp, -cn)
        yield Score(
            0,
            valid,
            np.abs(ew_full) >= lim_e,
            np.abs(ew_full) < lim_e * p.reset_fraction,
            ew_full / np.sqrt(p.lam / (2 - p.lam)),  # in sigmas of the EWMA
            np.full(len(b), p.ewma_l),
        )
        yield Score(
            1,
            valid,
            np.abs(cu_full) >= lim_c,
            np.abs(cu_full) < lim_c * p.reset_fraction,
            cu_full,
            np.full(len(b), lim_c),
        )

    def learn(self, b: Batch) -> None:
        """Warm-up buffers, then a slow baseline update from in-control readings only."""
        p = self.p
        use = b.usable & self.enabled[b.s]
        warming = use & (self.count[b.s] < p.warmup)
        if warming.any():
            self._warm(b.s[warming], b.v[warming])
        if self._z is None:
            return
        quiet = (self.decisions[0].active_since == 0) & (self.decisions[1].active_since == 0)
        z = self._z
        with np.errstate(invalid="ignore"):
            ok = ~np.isnan(z) & (np.abs(z) < p.gate) & quiet[b.s]
        if not ok.any():
            return
        s, v = b.s[ok], b.v[ok]
        sensors, inverse, n_acc = np.unique(s, return_inverse=True, return_counts=True)
        dev = v - self.centre[s]
        mean_dev = np.bincount(inverse, dev) / n_acc
        mean_abs = np.bincount(inverse, np.abs(dev)) / n_acc
        gain = 1.0 - (1.0 - p.baseline_alpha) ** n_acc
        self.centre[sensors] += gain * mean_dev
        self.absdev[sensors] += gain * (mean_abs - self.absdev[sensors])

    def _warm(self, s: np.ndarray, v: np.ndarray) -> None:
        p = self.p
        starts = group_starts(s)
        slot = self.count[s] + position(starts)
        fits = slot < p.warmup
        self.buf[s[fits], slot[fits]] = v[fits]
        sensors, n = np.unique(s, return_counts=True)
        self.count[sensors] = np.minimum(self.count[sensors] + n, p.warmup)
        done = sensors[(self.count[sensors] >= p.warmup) & np.isnan(self.centre[sensors])]
        if len(done):
            med = np.median(self.buf[done], axis=1)
            mad = np.median(np.abs(self.buf[done] - med[:, None]), axis=1)
            self.centre[done] = med
            self.absdev[done] = mad * MAD_TO_SIGMA / MEAN_ABS_TO_SIGMA

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


def _cusum(d: np.ndarray, starts: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """``S_i = max(0, S_{i-1} + d_i)`` per group = ``C_i - min(0, min_{j<=i} C_j)``."""
    c = initial + segmented_cumsum(d, starts)
    out: np.ndarray = c - np.minimum(segmented_min_accumulate(c, starts), 0.0)
    return out
