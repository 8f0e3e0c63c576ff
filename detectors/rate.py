"""Rate of change: a least-squares slope over an exponentially weighted time window.

For runaway-reaction and overpressure precursors (rising temperature / pressure). The
slope is the weighted least-squares fit of value against source time, with weights
``exp(-(t_now - t_j) / tau)``: O(1) state per sensor (five weighted sums, kept relative to
the sensor's last reading), robust to noise and to irregular sampling. Each reading decays
and shifts the sums to its own time and adds itself (weight 1 at age 0).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Transitions, from_kernel
from detectors.batch import BAD_QUALITY, Batch
from detectors.decision import Decision, emit, step
from detectors.jit import KERNEL

FORGET = 50.0  # a gap longer than this many time constants restarts the fit
RESET_FRACTION = 0.75  # deadband: clears below 75 % of the limit
_SUMS = ("s0", "s1", "s2", "sv", "stv")


class RateDetector(Detector):
    """Rising-rate alarm ``ROC_HIGH``: slope (units/min) at or above a per-sensor limit."""

    name = "rate"
    conditions = ("ROC_HIGH",)

    def __init__(
        self,
        limit_per_min: np.ndarray,
        window_s: np.ndarray | float = 60.0,
        on_delay_s: np.ndarray | float = 0.0,
        off_delay_s: np.ndarray | float = 0.0,
    ) -> None:
        super().__init__(len(limit_per_min))
        self.limit = np.asarray(limit_per_min, np.float64)
        self.tau = np.broadcast_to(np.asarray(window_s, np.float64), (self.n,)).copy()
        self.decisions = [Decision(self.n, on_delay_s, off_delay_s)]
        self.last_t = self.add_state("last_t", (), np.int64, 0)
        self.sums = {k: self.add_state(k, (), np.float64, 0.0) for k in _SUMS}

    def process(self, b: Batch) -> Transitions:
        """Slope per reading from the sums so far; needs the fit to span half a window."""
        ib, fb = self.out(len(b))
        sums = tuple(self.sums[k] for k in _SUMS)
        k = _rate(self.bank(), *b.walk, self.limit, self.tau, self.last_t, sums, ib, fb)
        return from_kernel(ib[:k], fb[:k])

    def describe(
        self, condition: int, active: bool, value: float, threshold: float, ref: SensorRef
    ) -> str:
        """E.g. ``TK101-TT-01 temperature rising 4.2 degC/min, limit 2 degC/min``."""
        unit = ref.sensor.unit
        if active:
            return (
                f"{ref.sensor.id} {ref.sensor.kind} rising {value:.3g} {unit}/min, "
                f"limit {threshold:g} {unit}/min"
            )
        return (
            f"{ref.sensor.id} {ref.sensor.kind} rise slowed to {value:.3g} {unit}/min "
            f"(limit {threshold:g} {unit}/min)"
        )

    def severity(self, condition: int, ref: SensorRef) -> Severity:
        """A runaway precursor gives the operator time: high, not critical."""
        return "high"


@njit(**KERNEL)
def _rate(dec, groups, bounds, t, v, q, late, limit, tau, last_t, sums, ib, fb):
    a0, a1, a2, av, atv = sums
    k = 0
    for g in range(len(groups)):  # one sensor's rows at a time: its fit in registers
        si = groups[g]
        lim = limit[si]
        if np.isnan(lim):
            continue
        ta = tau[si]
        min_var = (0.5 * ta) ** 2
        last = last_t[si]
        s0, s1, s2, sv, stv = a0[si], a1[si], a2[si], av[si], atv[si]
        for i in range(bounds[g], bounds[g + 1]):
            x = v[i]
            if late[i] or q[i] == BAD_QUALITY or np.isnan(x):
                continue
            ti = t[i]
            dt = (ti - last) / 1e9
            age = dt / ta  # in time constants
            if last == 0 or age > FORGET:
                s0 = s1 = s2 = sv = stv = 0.0
            else:  # decay to this reading's time and re-reference the times to it
                f = math.exp(-age)
                s2 = (s2 - 2 * dt * s1 + dt * dt * s0) * f
                s1 = (s1 - dt * s0) * f
                stv = (stv - dt * sv) * f
                s0 *= f
                sv *= f
            s0 += 1.0
            sv += x
            last = ti
            m1, m2, mv, mtv = s1 / s0, s2 / s0, sv / s0, stv / s0
            var = m2 - m1 * m1
            if var < min_var:
                continue
            slope = (mtv - m1 * mv) / var * 60.0
            code, act = step(dec, 0, si, ti, slope >= lim, slope < lim * RESET_FRACTION)
            if code != 0:
                emit(ib, fb, k, si, 0, code > 0, ti, act, slope, lim)
                k += 1
        a0[si], a1[si], a2[si], av[si], atv[si] = s0, s1, s2, sv, stv
        last_t[si] = last
    return k


def reference_rate(state: dict[str, float], t: int, v: float, tau: float) -> float:
    """Per-reading reference of the weighted slope (units/min); NaN while undefined."""
    last = int(state.get("last_t", 0))
    if last == 0 or (t - last) / 1e9 / tau > FORGET:
        for k in _SUMS:
            state[k] = 0.0
    else:
        dt = (t - last) / 1e9
        f = np.exp(-dt / tau)
        s0, s1, s2, sv, stv = (state[k] for k in _SUMS)
        state["s0"] = s0 * f
        state["s1"] = (s1 - dt * s0) * f
        state["s2"] = (s2 - 2 * dt * s1 + dt * dt * s0) * f
        state["sv"] = sv * f
        state["stv"] = (stv - dt * sv) * f
    state["s0"] += 1.0
    state["sv"] += v
    state["last_t"] = t
    s0, s1, s2, sv, stv = (state[k] for k in _SUMS)
    m1, m2, mv, mtv = s1 / s0, s2 / s0, sv / s0, stv / s0
    var = m2 - m1 * m1
    if var < (0.5 * tau) ** 2:
        return float("nan")
    return float((mtv - m1 * mv) / var * 60.0)
