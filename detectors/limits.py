"""Limit alarms LL/L/H/HH (ISA-18.2) with deadband, on-delay and off-delay.

The score is the reading itself. A high limit sets at ``value >= limit`` and resets at
``value < limit - deadband`` (mirrored for low limits); delays and hysteresis are the
shared decision layer's. For gas detectors H/HH are GB/T 50493's first and second level.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Score
from detectors.batch import Batch
from detectors.decision import Decision

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

    def score(self, b: Batch) -> Iterator[Score]:
        """One verdict per configured level; bad-quality, NaN and late readings decide nothing."""
        usable = b.usable
        band = self.deadband[b.s]
        for li, level in enumerate(LEVELS):
            limit = self.limits[li, b.s]
            configured = ~np.isnan(limit)
            if not configured.any():
                continue
            with np.errstate(invalid="ignore"):
                if _HIGH[level]:
                    set_, reset = b.v >= limit, b.v < limit - band
                else:
                    set_, reset = b.v <= limit, b.v > limit + band
            yield Score(li, usable & configured, set_, reset, b.v, limit)

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
