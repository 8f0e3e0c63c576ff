"""Normal operating values of every sensor and the breaches scripted on top of them.

The skeleton model: each sensor sits at a plausible operating point inside its
limits with Gaussian noise; a breach holds one sensor at a given value for a while.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from common.registry import Registry

_BREACH = re.compile(r"^(?P<sensor>[^=]+)=(?P<value>-?[\d.]+)@(?P<start>[\d.]+)\+(?P<dur>[\d.]+)$")


@dataclass(frozen=True, slots=True)
class Breach:
    sensor: int  # dense index
    value: float
    start_s: float
    duration_s: float


def parse_breach(text: str, registry: Registry) -> Breach:
    """``SENSOR=VALUE@START_S+DURATION_S``, e.g. ``TK101-PT-01=16.8@10+30``."""
    match = _BREACH.match(text)
    if not match:
        raise ConfigError("--breach", text, "expected SENSOR=VALUE@START_S+DURATION_S")
    ref = registry.sensor(match["sensor"])
    if ref is None:
        raise ConfigError("--breach", text, f"unknown sensor {match['sensor']!r}")
    value = float(match["value"])
    lo, hi = ref.sensor.range
    if not lo <= value <= hi:
        raise ConfigError("--breach", text, f"value outside the sensor range [{lo}, {hi}]")
    return Breach(ref.index, value, float(match["start"]), float(match["dur"]))


class PlantModel:
    """Vectorised values for all sensors at a time offset."""

    def __init__(self, registry: Registry, breaches: list[Breach], seed: int) -> None:
        lo, hi = registry.range_arrays()
        span = hi - lo
        h, low = registry.limit_array("h"), registry.limit_array("l")
        kinds = np.array([r.sensor.kind for r in registry], dtype=object)
        upper = np.where(np.isnan(h), hi - 0.3 * span, h)
        lower = np.where(np.isnan(low), lo, low)
        normal = np.where(np.isnan(low), upper - 0.2 * (upper - lower), (upper + lower) / 2)
        self.lo, self.hi = lo, hi
        self.normal = np.where(kinds == "gas", lo + 0.02 * span, normal)
        self.noise = 0.003 * span
        self.breaches = breaches
        self.rng = np.random.default_rng(seed)

    def values(self, t_s: float, sensors: np.ndarray) -> np.ndarray:
        """Values of ``sensors`` (dense indices) at ``t_s`` seconds after the start."""
        value = self.normal[sensors] + self.rng.normal(0, 1, len(sensors)) * self.noise[sensors]
        for b in self.breaches:  # a handful of scripted events, not readings
            if b.start_s <= t_s < b.start_s + b.duration_s:
                value = np.where(sensors == b.sensor, b.value, value)
        return np.clip(value, self.lo[sensors], self.hi[sensors])
