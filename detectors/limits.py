"""Limit alarms LL/L/H/HH (ISA-18.2) with deadband, on-delay and off-delay.

The score is the reading itself. A high limit sets at ``value >= limit`` and resets at
``value < limit - deadband`` (mirrored for low limits); delays and hysteresis are the
shared decision layer's. For gas detectors H/HH are GB/T 50493's first and second level.
Bad-quality, NaN and late readings decide nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Transitions, from_kernel
from detectors.batch import BAD_QUALITY, Batch
from detectors.decision import Decision, emit, idle, step
from detectors.jit import KERNEL

LEVELS = ("HH", "H", "L", "LL")
_HIGH = {"HH": True, "H": True, "L": False, "LL": False}


class LimitDetector(Detector):
    """Limit alarms for every sensor, state held as arrays."""

    name = "limits"
    conditions = LEVELS

    def __init__(
        self,
        limits: dict[str, np.ndarray],
        deadband: np.ndarray,
        on_delay_s: np.ndarray | float = 0.0,
        off_delay_s: np.ndarray | float = 0.0,
    ) -> None:
        self.limits = np.vstack([limits[level.lower()] for level in LEVELS])  # (4, n)
        super().__init__(self.limits.shape[1])
        self.deadband = np.asarray(deadband, np.float64)
        self.decisions = [Decision(self.n, on_delay_s, off_delay_s) for _ in LEVELS]

    def process(self, b: Batch) -> Transitions:
        """One verdict per configured level and reading, through the decision layer."""
        ib, fb = self.out(len(b))
        k = _limits(self.bank(), *b.walk, self.limits, self.deadband, ib, fb)
        return from_kernel(ib[:k], fb[:k])

    def describe(
        self, condition: int, active: bool, value: float, threshold: float, ref: SensorRef
    ) -> str:
        """E.g. ``TK101-PT-01 pressure 15.8 bar(g) above HH limit 15.5 bar(g)``."""
        level, unit = LEVELS[condition], ref.sensor.unit
        if active:
            where = "above" if _HIGH[level] else "below"
            return (
                f"{ref.sensor.id} {ref.sensor.kind} {value:.4g} {unit} "
                f"{where} {level} limit {threshold:g} {unit}"
            )
        return (
            f"{ref.sensor.id} {ref.sensor.kind} back to {value:.4g} {unit}, "
            f"within {level} limit {threshold:g} {unit}"
        )

    def severity(self, condition: int, ref: SensorRef) -> Severity:
        """Gas second level is life safety; other outer limits are high, inner ones medium."""
        level = LEVELS[condition]
        if ref.sensor.kind == "gas":
            return "critical" if level in ("HH", "LL") else "high"
        return "high" if level in ("HH", "LL") else "medium"


@njit(**KERNEL)
def _limits(dec, groups, bounds, t, v, q, late, limits, band, ib, fb):
    k = 0
    for g in range(len(groups)):  # one sensor's rows at a time: its settings in registers
        si = groups[g]
        hh, h, lo, ll, db = limits[0, si], limits[1, si], limits[2, si], limits[3, si], band[si]
        a, e = bounds[g], bounds[g + 1]
        if idle(dec, 0, si) and idle(dec, 1, si) and idle(dec, 2, si) and idle(dec, 3, si):
            top, bottom = -np.inf, np.inf  # of the usable readings
            for i in range(a, e):
                x = v[i]
                if not (late[i] or q[i] == BAD_QUALITY or np.isnan(x)):
                    top = max(top, x)
                    bottom = min(bottom, x)
            if not (top >= hh or top >= h or bottom <= lo or bottom <= ll):
                continue  # no reading sets a level at rest: every step would be a no-op
        for i in range(a, e):
            x = v[i]
            if late[i] or q[i] == BAD_QUALITY or np.isnan(x):
                continue
            ti = t[i]
            for li in range(4):  # HH, H, L, LL
                limit = hh if li == 0 else h if li == 1 else lo if li == 2 else ll
                if np.isnan(limit):
                    continue
                if li < 2:
                    set_, reset = x >= limit, x < limit - db
                else:
                    set_, reset = x <= limit, x > limit + db
                code, act = step(dec, li, si, ti, set_, reset)
                if code != 0:
                    emit(ib, fb, k, si, li, code > 0, ti, act, x, limit)
                    k += 1
    return k
