"""Per-sensor detector settings from the plant registry, with defaults per sensor kind.

Defaults follow docs/domain.md where it gives a figure; the rest are project choices,
listed in docs/detectors.md. A sensor's ``detection`` block in the registry overrides them.
"""

from __future__ import annotations

import numpy as np

from common.registry import Registry, Sensor
from common.substances import MOLAR_VOLUME_L, SUBSTANCES
from detectors.drift import DriftDetector
from detectors.exposure import ExposureDetector
from detectors.health import HealthDetector
from detectors.limits import LimitDetector
from detectors.rate import RateDetector
from detectors.suite import Suite

# Rate-of-change limits [project choice]: temperature 2 units/min, pressure 5 % of span/min.
RATE_TEMPERATURE_PER_MIN = 2.0
RATE_PRESSURE_SPAN_PER_MIN = 0.05
RATE_WINDOW_S = 60.0
DRIFT_KINDS = frozenset({"temperature", "pressure", "level", "flow"})
SPIKE_FRACTION = 0.5  # of span between two readings; off for gas (a leak can jump)
STUCK_S = {"temperature": 3600.0, "pressure": 3600.0, "flow": 3600.0}
STALE_FACTOR = 3.0
SCALE_FLOOR_FRACTION = 0.002  # of span: drift's sigma never below this

# GBZ 2.1 short-term limits (mg/m3) from docs/domain.md 2.4: (PC-TWA, PC-STEL or MAC).
# A MAC is a ceiling: its 15-min average must stay below it too; no 8-h TWA then.
EXPOSURE_MG_M3: dict[str, tuple[float | None, float]] = {
    "ammonia": (20.0, 30.0),
    "carbon_monoxide": (20.0, 30.0),
    "sulfur_dioxide": (5.0, 10.0),
    "benzene": (6.0, 10.0),
    "chlorine": (None, 1.0),
    "hydrogen_sulfide": (None, 10.0),
    "hydrogen_cyanide": (None, 1.0),
    "phosgene": (None, 0.5),
}


def _span(sensor: Sensor) -> float:
    lo, hi = sensor.range
    return hi - lo


def rate_limit(sensor: Sensor) -> float:
    """ROC_HIGH limit in sensor units per minute (NaN = off)."""
    d = sensor.detection
    if d.rate_limit_per_min is not None:
        return d.rate_limit_per_min
    if sensor.kind == "temperature":
        return RATE_TEMPERATURE_PER_MIN
    if sensor.kind == "pressure":
        return RATE_PRESSURE_SPAN_PER_MIN * _span(sensor)
    return float("nan")


def exposure_limits(sensor: Sensor) -> tuple[float, float]:
    """(STEL, TWA) in the sensor's units for toxic gas sensors (NaN = off)."""
    d = sensor.detection
    stel, twa = float("nan"), float("nan")
    table = EXPOSURE_MG_M3.get(sensor.substance or "")
    if sensor.kind == "gas" and table is not None and sensor.unit in ("mg/m3", "ppm"):
        twa_mg, stel_mg = table
        factor = 1.0
        if sensor.unit == "ppm":  # mg/m3 -> ppm
            factor = MOLAR_VOLUME_L / SUBSTANCES[sensor.substance or ""].molar_mass_g_mol
        stel = stel_mg * factor
        twa = float("nan") if twa_mg is None else twa_mg * factor
    return (d.stel or stel, d.twa or twa)


def build_suite(registry: Registry) -> Suite:
    """The full non-multivariate suite for every sensor of a registry."""
    sensors = [r.sensor for r in registry]
    n = len(sensors)
    lo, hi = registry.range_arrays()
    span = hi - lo
    arr = np.array
    limits = LimitDetector(
        {name: registry.limit_array(name) for name in ("ll", "l", "h", "hh")},
        registry.deadband_array(),
        arr([s.limits.on_delay_s for s in sensors], float).reshape(n),
        arr([s.limits.off_delay_s for s in sensors], float).reshape(n),
    )
    rate = RateDetector(
        arr([rate_limit(s) for s in sensors], float).reshape(n),
        arr([s.detection.rate_window_s or RATE_WINDOW_S for s in sensors], float).reshape(n),
    )
    drift_on = [
        s.detection.drift if s.detection.drift is not None else s.kind in DRIFT_KINDS
        for s in sensors
    ]
    drift = DriftDetector(arr(drift_on, bool).reshape(n), SCALE_FLOOR_FRACTION * span)
    spike = [
        s.detection.spike_fraction or (np.nan if s.kind == "gas" else SPIKE_FRACTION)
        for s in sensors
    ]
    stuck = [s.detection.stuck_s or STUCK_S.get(s.kind, np.nan) for s in sensors]
    stale = [(s.detection.stale_factor or STALE_FACTOR) * s.interval_s for s in sensors]
    health = HealthDetector(
        lo,
        hi,
        arr(spike, float).reshape(n),
        arr(stuck, float).reshape(n),
        arr(stale, float).reshape(n),
    )
    stel, twa = (arr(x, float).reshape(n) for x in zip(*map(exposure_limits, sensors), strict=True))
    exposure = ExposureDetector(stel, twa, 3.0 * arr([s.interval_s for s in sensors], float))
    return Suite([limits, rate, drift, health, exposure], n)
