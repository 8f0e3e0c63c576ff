"""Rate of change: a least-squares slope over an exponentially weighted time window.

For runaway-reaction and overpressure precursors (rising temperature / pressure). The
slope is the weighted least-squares fit of value against source time, with weights
``exp(-(t_now - t_j) / tau)``: O(1) state per sensor (five weighted sums), robust to
noise and to irregular sampling. The slope is invariant to a common scaling of the
weights, so within a batch the sums are plain cumulative sums of ``w_j = exp((t_j-r)/tau)``
from a per-sensor reference time ``r``; batches whose span would overflow are split by time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Score, Transitions, concat
from detectors.batch import Batch, group_ends, group_starts, segmented_cumsum
from detectors.decision import Decision

MAX_SPAN = 200.0  # in time constants: exp(200) is far from float64 overflow
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
        self._pending: tuple[np.ndarray, ...] | None = None

    def process(self, b: Batch) -> Transitions:
        """Split batches whose span would overflow the weights, else the shared path."""
        rows = np.flatnonzero(b.usable & ~np.isnan(self.limit[b.s]))
        if len(rows) == 0:
            return super().process(b)
        s, t = b.s[rows], b.t[rows]
        _, _, ref, _ = self._reference(s, t)
        span = float(np.max((t - ref) / 1e9 / self.tau[s]))
        if span <= MAX_SPAN or len(np.unique(b.t)) < 2:
            return super().process(b)
        cut = np.median(b.t)
        early = b.t <= cut if (b.t < cut).any() else b.t < b.t.max()
        halves = [_subset(b, early), _subset(b, ~early)]
        return concat([self.process(h) for h in halves])

    def _reference(
        self, s: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Group bounds, the reference time per row and whether carried sums apply.

        The carried sums are relative to ``last_t`` with weight 1 there, so that is the
        reference when they are kept; a sensor new (or silent too long) starts afresh.
        """
        starts, ends = group_starts(s), group_ends(s)
        first = np.maximum.accumulate(np.where(starts, np.arange(len(s)), 0))
        last = self.last_t[s[first]]
        keep = (last != 0) & ((t[first] - last) / 1e9 / self.tau[s] <= FORGET)
        return starts, ends, np.where(keep, last, t[first]), keep

    def score(self, b: Batch) -> Iterator[Score]:
        """Slope per reading from the sums so far; needs the fit to span half a window."""
        valid = b.usable & ~np.isnan(self.limit[b.s])
        rows = np.flatnonzero(valid)
        self._pending = None
        if len(rows) == 0:
            return
        s, t, v = b.s[rows], b.t[rows], b.v[rows]
        tau = self.tau[s]
        starts, ends, ref, carried = self._reference(s, t)
        x = (t - ref) / 1e9  # seconds since the reference
        w = np.exp(x / tau)
        carry = {k: np.where(carried, self.sums[k][s], 0.0) for k in _SUMS}
        a0 = carry["s0"] + segmented_cumsum(w, starts)
        a1 = carry["s1"] + segmented_cumsum(w * x, starts)
        a2 = carry["s2"] + segmented_cumsum(w * x * x, starts)
        av = carry["sv"] + segmented_cumsum(w * v, starts)
        atv = carry["stv"] + segmented_cumsum(w * x * v, starts)
        m1, m2, mv, mtv = a1 / a0, a2 / a0, av / a0, atv / a0
        var = m2 - m1 * m1
        slope = np.full(len(s), np.nan)
        ok = var >= (0.5 * tau) ** 2
        slope[ok] = (mtv[ok] - m1[ok] * mv[ok]) / var[ok] * 60.0
        full = np.full(len(b), np.nan)
        full[rows] = slope
        limit = self.limit[b.s]
        with np.errstate(invalid="ignore"):
            set_ = full >= limit
            reset = full < limit * RESET_FRACTION
        # End state, re-referenced to each sensor's last reading (weight 1 there).
        e = ends
        d, f = x[e], 1.0 / w[e]
        self._pending = (
            s[e],
            t[e],
            a0[e] * f,
            (a1[e] - d * a0[e]) * f,
            (a2[e] - 2 * d * a1[e] + d * d * a0[e]) * f,
            av[e] * f,
            (atv[e] - d * av[e]) * f,
        )
        yield Score(0, valid & ~np.isnan(full), set_, reset, full, limit)

    def learn(self, b: Batch) -> None:
        """Keep the re-referenced sums of each sensor's last reading."""
        if self._pending is None:
            return
        sensors, t, *sums = self._pending
        self.last_t[sensors] = t
        for k, val in zip(_SUMS, sums, strict=True):
            self.sums[k][sensors] = val
        self._pending = None

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


def _subset(b: Batch, mask: np.ndarray) -> Batch:
    return Batch(b.s[mask], b.t[mask], b.v[mask], b.q[mask], b.late[mask])


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
