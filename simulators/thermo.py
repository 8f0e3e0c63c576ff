"""Vapour pressure and latent heat of liquefied gases (see docs/domain.md section 5.3).

DIPPR equation 101 (Perry's Table 2-8, via CalebBell/chemicals):
``ln(P/Pa) = C1 + C2/T + C3 ln T + C4 T^C5`` with T in kelvin. Commercial LPG is
modelled as propane (its dominant, more volatile component): the conservative choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ATM_BAR = 1.01325
KELVIN = 273.15


@dataclass(frozen=True, slots=True)
class Liquefied:
    c: tuple[float, float, float, float, float]  # DIPPR 101 C1..C5
    valid_k: tuple[float, float]
    latent_kj_kg: float  # heat of vaporisation near 20 degC
    cp_kj_kg_k: float  # liquid heat capacity


LIQUEFIED: dict[str, Liquefied] = {
    "propane": Liquefied((59.078, -3492.6, -6.0669, 1.0919e-5, 2), (85, 370), 344, 2.6),
    "lpg": Liquefied((59.078, -3492.6, -6.0669, 1.0919e-5, 2), (85, 370), 344, 2.6),
    "n-butane": Liquefied((66.343, -4363.2, -7.046, 9.4509e-6, 2), (135, 425), 364, 2.4),
    "ammonia": Liquefied((90.483, -4669.7, -11.607, 0.017194, 1), (195, 406), 1186, 4.7),
    "chlorine": Liquefied((71.334, -3855.0, -8.5171, 0.012378, 1), (172, 417), 253, 0.95),
    "hydrogen_sulfide": Liquefied((85.584, -3839.9, -11.199, 0.018848, 1), (188, 374), 490, 2.0),
}


def psat_bar(substance: str, t_c: np.ndarray | float) -> np.ndarray:
    """Saturation pressure in bar absolute at liquid temperature ``t_c`` (degC)."""
    c1, c2, c3, c4, c5 = LIQUEFIED[substance].c
    t = np.asarray(t_c, np.float64) + KELVIN
    return np.exp(c1 + c2 / t + c3 * np.log(t) + c4 * t**c5) / 1e5


def psat_arrays(coef: np.ndarray, t_c: np.ndarray) -> np.ndarray:
    """Vectorised over vessels: ``coef`` is (n, 5), one DIPPR row per vessel; bar abs."""
    t = np.asarray(t_c, np.float64) + KELVIN
    c1, c2, c3, c4, c5 = coef.T
    return np.exp(c1 + c2 / t + c3 * np.log(t) + c4 * t**c5) / 1e5


def temperature_at_psat(coef: np.ndarray, p_bar_abs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`psat_arrays` by bisection (monotonic in T), degC."""
    lo = np.full(len(coef), -60.0)
    hi = np.full(len(coef), 120.0)
    for _ in range(50):
        mid = (lo + hi) / 2
        above = psat_arrays(coef, mid) > p_bar_abs
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return (lo + hi) / 2
