"""Reference data for the substances a plant may hold (see docs/domain.md).

Values are the ones in the team's domain reference; sources are named there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Substance:
    name: str
    molar_mass_g_mol: float
    # GB 18218-2018 threshold quantity Q (tonnes) and beta correction factor.
    threshold_t: float
    beta: float
    lel_vol_pct: float | None = None  # lower explosive limit, IEC 60079-20-1 basis
    oel_mg_m3: float | None = None  # GBZ 2.1 MAC or PC-TWA: GB/T 50493 first level


SUBSTANCES: dict[str, Substance] = {
    s.name: s
    for s in (
        Substance("propane", 44.10, 50, 1.5, lel_vol_pct=1.7),
        Substance("lpg", 50.0, 50, 1.5, lel_vol_pct=1.7),
        Substance("n-butane", 58.12, 50, 1.5, lel_vol_pct=1.4),
        Substance("methane", 16.04, 50, 1.5, lel_vol_pct=4.4),
        Substance("hydrogen", 2.016, 5, 1.5, lel_vol_pct=4.0),
        Substance("ethylene", 28.05, 50, 1.5, lel_vol_pct=2.3),
        Substance("ammonia", 17.03, 10, 2, lel_vol_pct=15.0, oel_mg_m3=20),
        Substance("chlorine", 70.90, 5, 4, oel_mg_m3=1),
        Substance("hydrogen_sulfide", 34.08, 5, 5, oel_mg_m3=10),
        Substance("carbon_monoxide", 28.01, 20, 2, lel_vol_pct=12.5, oel_mg_m3=20),
        Substance("sulfur_dioxide", 64.07, 20, 2, oel_mg_m3=5),
        Substance("benzene", 78.11, 50, 1, lel_vol_pct=1.2, oel_mg_m3=6),
        Substance("ethylene_oxide", 44.05, 10, 2, lel_vol_pct=3.0),
        Substance("phosgene", 98.92, 0.3, 20, oel_mg_m3=0.5),
        Substance("hydrogen_cyanide", 27.03, 1, 10, lel_vol_pct=5.6, oel_mg_m3=1),
        Substance("methanol", 32.04, 500, 1, lel_vol_pct=6.0),
        Substance("toluene", 92.14, 500, 1, lel_vol_pct=1.1),
    )
}

# Molar volume of an ideal gas at 20 degC, 101.3 kPa (GBZ 2.1 conversion basis), L/mol.
MOLAR_VOLUME_L = 24.04


def ppm_to_mg_m3(ppm: float, substance: str) -> float:
    """Convert a gas concentration in ppm to mg/m3 at 20 degC, 101.3 kPa."""
    return ppm * SUBSTANCES[substance].molar_mass_g_mol / MOLAR_VOLUME_L
