"""Gas dispersion from a leak to the detectors: a ground-level Gaussian plume.

Steady Gaussian plume for a ground-level point source with ground reflection,
``C = Q / (pi u sy sz) exp(-y^2 / 2 sy^2)`` (kg/m3) for downwind distance x > 0,
Briggs open-country dispersion coefficients for neutral stability (class D),
``sy = 0.08 x (1 + 0.0001 x)^-0.5``, ``sz = 0.06 x (1 + 0.0015 x)^-0.5``, with a
1.5 m floor for the near field around equipment. Gas reaches a detector
``x / u`` seconds after it left the source (transport delay), so detectors
nearer downwind rise first and upwind ones see nothing. Vectorised over detectors.
"""

from __future__ import annotations

import numpy as np

from common.substances import MOLAR_VOLUME_L, SUBSTANCES

SIGMA_FLOOR_M = 1.5


def plume_kg_m3(
    rate_kg_s: float, wind_m_s: float, towards_rad: float, dx: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Concentration at offsets (dx east, dy north) from the source, and the downwind
    distance of each point (m; <= 0 means upwind or crosswind)."""
    u = max(wind_m_s, 0.5)
    ex, ey = np.sin(towards_rad), np.cos(towards_rad)  # bearing: 0 = north, 90 = east
    x = dx * ex + dy * ey
    y = -dx * ey + dy * ex
    xp = np.maximum(x, 0.1)
    sy = np.hypot(0.08 * xp / np.sqrt(1 + 0.0001 * xp), SIGMA_FLOOR_M)
    sz = np.hypot(0.06 * xp / np.sqrt(1 + 0.0015 * xp), SIGMA_FLOOR_M)
    c = rate_kg_s / (np.pi * u * sy * sz) * np.exp(-(y**2) / (2 * sy**2))
    return np.where(x > 0, c, 0.0), x


def to_sensor_units(c_kg_m3: np.ndarray, substance: str, units: np.ndarray) -> np.ndarray:
    """kg/m3 of ``substance`` in each detector's engineering unit (20 degC, 1 atm)."""
    sub = SUBSTANCES[substance]
    gas_density = sub.molar_mass_g_mol / MOLAR_VOLUME_L  # kg/m3 of the pure gas
    vol_frac = c_kg_m3 / gas_density
    lel = sub.lel_vol_pct or np.inf
    return np.select(
        [units == "%LEL", units == "ppm", units == "mg/m3", units == "%vol"],
        [vol_frac * 100 / lel * 100, vol_frac * 1e6, c_kg_m3 * 1e6, vol_frac * 100],
        0.0,
    )
