"""Jacket-cooled exothermic reactors: an energy balance with Arrhenius kinetics.

Per reactor (vectorised), in normalised units where a concentration of 1 releases
enough heat to raise the mass by ``B`` kelvin:

* a semi-batch feed ``f`` of reactant accumulates as ``C`` and reacts at
  ``k(T) = k_ref exp(E/R (1/T0 - 1/T))``;
* the product mass ``M`` decomposes at ``kd(T)`` with a much higher activation
  energy and heat ``B_d`` (the secondary reaction that makes a runaway);
* the jacket removes ``a * eff(flow) * (T - Tc_in)``; ``a`` is sized so that at the
  operating point T0 removal equals the heat of the feed.

With cooling the operating point is stable (removal rises faster with T than
generation); without it the feed heat raises T until the decomposition takes over
and the temperature runs away. Consumption uses exact exponentials per step, so
large rates stay numerically stable. Head pressure: an inert pad that scales with
T, solvent vapour (Clausius-Clapeyron) and the gas the decomposition makes; at the
relief (rupture disc) pressure the vessel vents to atmosphere and stays open, and
boiling solvent holds the temperature at its atmospheric boiling point.
"""

from __future__ import annotations

import numpy as np

from common.registry import Unit

R = 8.314
E_MAIN = 80e3  # J/mol
E_DECOMP = 150e3
K_REF = 1 / 300  # 1/s at T0
B_MAIN = 50.0  # K per unit C
C_STEADY = 0.1  # accumulated reactant at the operating point (5 K MTSR margin)
B_DECOMP = 300.0  # K, adiabatic rise of the full decomposition
KD0 = 2e-7  # 1/s at T0: self-heating 0.004 K/min, below the 0.02 K/min ARC onset
TC_IN = 25.0  # cooling water supply, degC
GAS_BAR = 10.0  # bar added by the full decomposition at T0
SOLVENT_LATENT = 35e3  # J/mol, solvent vapour pressure slope
JACKET_TAU_S = 120.0


def operating_point(unit: Unit) -> tuple[float, float]:
    """(T0 degC, P0 bar(g)) derived from the registry: 15 K below the lowest
    high temperature limit, and 60 % of the head pressure's high limit."""
    highs = [s.limits.h for s in unit.sensors if s.kind == "temperature"]
    pres = [s for s in unit.sensors if s.kind == "pressure"]
    t0 = max((h for h in highs if h is not None), default=95.0) - 15.0
    p0 = 0.5
    if pres:
        s = pres[0]
        top = s.limits.h if s.limits.h is not None else s.range[1] * 0.5
        p0 = max(s.range[0], 0.6 * top)
    return float(t0), float(p0)


class Reactors:
    """State of every reactor; arrays indexed by reactor number."""

    def __init__(self, units: list[Unit]) -> None:
        self.ids = [u.id for u in units]
        points = [operating_point(u) for u in units]
        n = len(units)
        self.t0 = np.array([p[0] for p in points], np.float64)
        self.p0 = np.array([p[1] for p in points], np.float64)
        self.t_c = self.t0.copy()
        self.c = np.full(n, C_STEADY)
        self.m = np.ones(n)
        self.feed = np.full(n, C_STEADY * K_REF)
        self.a = B_MAIN * self.feed / (self.t0 - TC_IN)
        self.tj = TC_IN + (self.t0 - TC_IN) * 0.18
        self.relief_barg = np.array(
            [
                np.inf if u.relief_set_pressure_barg is None else u.relief_set_pressure_barg
                for u in units
            ]
        )
        self.vented = np.zeros(n, bool)
        t0k = self.t0 + 273.15
        p0_abs = self.p0 + 1.01325
        self.pv0 = np.minimum(0.4, 0.5 * p0_abs)
        self.pad0 = p0_abs - self.pv0
        self._t0k = t0k
        self.t_boil = 1 / (1 / t0k - R / SOLVENT_LATENT * np.log(1.01325 / self.pv0)) - 273.15

    def __len__(self) -> int:
        return len(self.ids)

    def step(self, dt: float, flow: np.ndarray, ambient_c: float, charge: np.ndarray) -> None:
        """Advance by ``dt`` s; ``flow`` is the cooling flow fraction, ``charge`` reactant
        added now (in units of C, e.g. an overcharge)."""
        tk = self.t_c + 273.15
        k = K_REF * np.exp(E_MAIN / R * (1 / self._t0k - 1 / tk))
        kd = KD0 * np.exp(E_DECOMP / R * (1 / self._t0k - 1 / tk))
        c0 = self.c + charge
        decay = np.exp(-k * dt)
        c1 = c0 * decay + self.feed / k * (1 - decay)
        heat_main = B_MAIN * (c0 + self.feed * dt - c1)
        m1 = self.m * np.exp(-kd * dt)
        heat_decomp = B_DECOMP * (self.m - m1)
        eff = 1.1 * flow / (flow + 0.1)
        t = self.t_c + heat_main + heat_decomp
        removal = self.a * eff + 2e-6  # 2e-6 1/s: losses of the insulated shell
        target = (self.a * eff * TC_IN + 2e-6 * ambient_c) / removal
        t = target + (t - target) * np.exp(-removal * dt)
        self.c, self.m, self.t_c = c1, m1, t
        ratio = 1 - 0.82 * np.sqrt(np.clip(flow, 0, 1))
        tj_target = TC_IN + (self.t_c - TC_IN) * ratio
        self.tj += (tj_target - self.tj) * (1 - np.exp(-dt / JACKET_TAU_S))
        self.vented |= self._pressure() >= self.relief_barg
        # an open vessel cannot get hotter than its solvent's boiling point
        self.t_c = np.where(self.vented, np.minimum(self.t_c, self.t_boil), self.t_c)

    def _pressure(self) -> np.ndarray:
        tk = self.t_c + 273.15
        scale = tk / self._t0k
        vapour = self.pv0 * np.exp(SOLVENT_LATENT / R * (1 / self._t0k - 1 / tk))
        return self.pad0 * scale + vapour + GAS_BAR * (1 - self.m) * scale - 1.01325

    def pressure_barg(self) -> np.ndarray:
        """Head pressure; a vented (burst disc) reactor is open to the atmosphere."""
        return np.where(self.vented, 0.02, self._pressure())
