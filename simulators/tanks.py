"""Storage vessels: liquid temperature, vapour pressure, fill level and relief, per unit.

Vectorised over the storage units of a plant (tanks, storage areas, warehouses). The
liquid temperature follows the air with a first-order lag (a large sphere has a
thermal time constant of many hours) towards an equilibrium raised by solar gain;
a fire adds heat. A pure liquefied gas in a closed vessel sits at its saturation
pressure, so gauge pressure = Psat(T) - 1.013 bar, plus the partial pressure of any
non-condensable gas (the overpressure scenario). When the pressure reaches the
relief set pressure the valve opens: non-condensables vent, and the liquid cannot
warm past the temperature whose Psat equals set pressure + 10 % accumulation
(API 520): extra heat boils liquid off instead, which lowers the level. The valve
reseats at 93 % of set (blowdown).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.registry import Unit
from simulators.thermo import ATM_BAR, LIQUEFIED, temperature_at_psat

MAX_FILL = 0.85  # registry inventories are the quantity at the 85 % maximum fill
START_FILL = 0.60
THERMAL_TAU_S = 12 * 3600.0
BLOWDOWN = 0.93
ACCUMULATION = 1.10
NC_VENT_TAU_S = 30.0


@dataclass(slots=True)
class TankInputs:
    """Per-step drivers, one entry per vessel."""

    fire_kw: np.ndarray
    transfer_t_h: np.ndarray  # + into the vessel, - out
    leak_kg_s: np.ndarray
    nc_rate_bar_s: np.ndarray  # non-condensable gas entering (overpressure)


class Tanks:
    """State of every storage vessel; arrays indexed by vessel number."""

    def __init__(self, units: list[Unit], ambient_c: float) -> None:
        self.ids = [u.id for u in units]
        n = len(units)
        self.capacity_t = np.array(
            [max(sum(i.quantity_t for i in u.inventories), 1.0) / MAX_FILL for u in units]
        )
        self.mass_t = self.capacity_t * START_FILL
        self.t_c = np.full(n, ambient_c)
        self.coef = np.full((n, 5), np.nan)
        self.t_valid_k = np.full(n, 370.0)  # DIPPR validity (near the critical point)
        self.latent = np.full(n, 400.0)
        self.cp = np.full(n, 2.0)
        for i, u in enumerate(units):
            gas = next((inv.substance for inv in u.inventories if inv.substance in LIQUEFIED), None)
            if gas is not None:
                data = LIQUEFIED[gas]
                self.coef[i] = data.c
                self.t_valid_k[i] = data.valid_k[1]
                self.latent[i], self.cp[i] = data.latent_kj_kg, data.cp_kj_kg_k
        self.liquefied = ~np.isnan(self.coef[:, 0])
        self.relief_barg = np.array(
            [
                np.nan if u.relief_set_pressure_barg is None else u.relief_set_pressure_barg
                for u in units
            ]
        )
        self.nc_bar = np.zeros(n)
        self.relief_open = np.zeros(n, bool)
        self.relieved_t = np.zeros(n)  # tonnes boiled off through the relief valve
        coef = np.where(self.liquefied[:, None], self.coef, LIQUEFIED["propane"].c)
        cap = np.where(np.isnan(self.relief_barg), 1e3, self.relief_barg * ACCUMULATION)
        self._t_cap = np.where(
            self.liquefied & ~np.isnan(self.relief_barg),
            temperature_at_psat(coef, cap + ATM_BAR),
            np.inf,
        )
        self._coef_safe = coef

    def __len__(self) -> int:
        return len(self.ids)

    def step(
        self, dt: float, ambient_c: float, solar: float, solar_gain_k: float, inp: TankInputs
    ) -> None:
        """Advance every vessel by ``dt`` seconds."""
        t_eq = ambient_c + solar_gain_k * solar
        mass_kg = np.maximum(self.mass_t * 1000, 1.0)
        self.t_c += (t_eq - self.t_c) * (1 - np.exp(-dt / THERMAL_TAU_S))
        self.t_c += inp.fire_kw * dt / (mass_kg * self.cp)
        # relief: boil off above the capped temperature, vent non-condensables
        p = self.pressure_barg()
        self.relief_open |= p >= self.relief_barg
        self.relief_open &= ~(p < BLOWDOWN * self.relief_barg)
        over = np.where(self.relief_open, np.maximum(self.t_c - self._t_cap, 0.0), 0.0)
        boiled_t = over * mass_kg * self.cp / self.latent / 1000
        self.t_c -= over
        self.relieved_t += boiled_t
        self.nc_bar += inp.nc_rate_bar_s * dt
        self.nc_bar *= np.where(self.relief_open, np.exp(-dt / NC_VENT_TAU_S), 1.0)
        self.mass_t += inp.transfer_t_h * dt / 3600 - inp.leak_kg_s * dt / 1000 - boiled_t
        self.mass_t = np.clip(self.mass_t, 0.0, self.capacity_t)
        self.t_c = np.minimum(self.t_c, 400.0)  # an emptied shell in a fire: bounded

    def pressure_barg(self) -> np.ndarray:
        """Gauge pressure: Psat(T) - 1 atm + non-condensables (0 for atmospheric stores)."""
        c1, c2, c3, c4, c5 = self._coef_safe.T
        t = np.minimum(self.t_c + 273.15, self.t_valid_k)
        psat = np.exp(c1 + c2 / t + c3 * np.log(t) + c4 * t**c5) / 1e5
        return np.where(self.liquefied, psat - ATM_BAR, 0.0) + self.nc_bar

    def level_pct(self) -> np.ndarray:
        return 100.0 * self.mass_t / self.capacity_t
