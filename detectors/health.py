"""Sensor health, kept apart from process alarms: a broken sensor is a fault, not a leak.

Every condition name starts with ``FAULT_`` so alerting can route them as maintenance
alarms:

* ``FAULT_RANGE``: reading outside the physical range (beyond a small margin).
* ``FAULT_SPIKE``: a physically impossible jump between consecutive readings.
* ``FAULT_STUCK``: the value has not changed for ``stuck_s`` (on a normally noisy signal).
* ``FAULT_QUALITY``: the source flags readings bad (or sends NaN with good quality).
* ``FAULT_OFFLINE``: bad quality with a NaN value, how the ingest bridge marks a
  Sparkplug DEATH of the node or device.
* ``FAULT_STALE``: no reading for ``stale_factor`` x the expected interval. Judged on
  data (a gap between two readings) and on the clock (:meth:`HealthDetector.tick`); the
  activation time is always ``last reading + limit`` so both ways give the same event id.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Transitions, from_kernel
from detectors.batch import BAD_QUALITY, Batch
from detectors.decision import Decision, emit, idle, step
from detectors.jit import KERNEL

CONDITIONS = (
    "FAULT_RANGE",
    "FAULT_SPIKE",
    "FAULT_STUCK",
    "FAULT_QUALITY",
    "FAULT_OFFLINE",
    "FAULT_STALE",
)
RANGE, SPIKE, STUCK, QUALITY, OFFLINE, STALE = range(6)
RANGE_MARGIN = 0.02  # of span: a reading this far outside the range is a fault


class HealthDetector(Detector):
    """Sensor faults from the readings and from the clock."""

    name = "health"
    conditions = CONDITIONS
    max_per_reading = 7  # five faults, and a stale gap (raised and cleared)

    def __init__(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        spike_frac: np.ndarray,
        stuck_s: np.ndarray,
        stale_s: np.ndarray,
        off_delay_s: float = 30.0,
    ) -> None:
        super().__init__(len(lo))
        self.lo, self.hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        span = self.hi - self.lo
        self.margin = RANGE_MARGIN * span
        self.jump = np.asarray(spike_frac, np.float64) * span  # NaN = off
        self.stuck_s = np.asarray(stuck_s, np.float64)  # NaN = off
        self.stale_ns = np.round(np.asarray(stale_s, np.float64) * 1e9).astype(np.int64)
        on_stuck = np.nan_to_num(self.stuck_s, nan=0.0)
        self.decisions = [
            Decision(self.n, 0.0, off_delay_s),  # range
            Decision(self.n, 0.0, off_delay_s),  # spike
            Decision(self.n, on_stuck, 0.0),  # stuck: the on-delay is the flat time
            Decision(self.n, 0.0, 0.0),  # quality
            Decision(self.n, 0.0, 0.0),  # offline
            Decision(self.n),  # stale: decided here, the Decision only holds the state
        ]
        self.last_v = self.add_state("last_v", (), np.float64, np.nan)
        self.last_seen = self.add_state("last_seen", (), np.int64, 0)

    def process(self, b: Batch) -> Transitions:
        """Data-driven faults plus stale gaps between readings, one pass over the batch."""
        ib, fb = self.out(len(b))
        params = (self.lo, self.hi, self.margin, self.jump, self.stuck_s, self.stale_ns)
        k = _health(self.bank(), *b.walk, params, self.last_v, self.last_seen, ib, fb)
        return from_kernel(ib[:k], fb[:k])

    def tick(self, now_ns: int) -> Transitions:
        """Raise FAULT_STALE for sensors silent longer than their limit (clock-driven)."""
        since = self.decisions[STALE].active_since
        due = (self.stale_ns > 0) & (self.last_seen != 0) & (since == 0)
        due &= now_ns - self.last_seen > self.stale_ns
        idx = np.flatnonzero(due)
        act = self.last_seen[idx] + self.stale_ns[idx]
        since[idx] = act
        lim_s = self.stale_ns[idx] / 1e9
        return Transitions(
            idx.astype(np.int64),
            np.full(len(idx), STALE, np.int64),
            np.ones(len(idx), bool),
            act,
            lim_s,
            lim_s,
            act,
        )

    def describe(
        self, condition: int, active: bool, value: float, threshold: float, ref: SensorRef
    ) -> str:
        """Maintenance wording, e.g. ``TK101-GD-03 sensor fault: no reading for 3 s``."""
        sid, unit = ref.sensor.id, ref.sensor.unit
        if not active:
            return f"{sid} sensor fault {CONDITIONS[condition]} cleared"
        text = {
            RANGE: f"reading {value:.4g} {unit} outside the physical range "
            f"[{self.lo[ref.index]:g}, {self.hi[ref.index]:g}] {unit}",
            SPIKE: f"impossible jump of {value:.4g} {unit} between readings "
            f"(max {threshold:.4g} {unit})",
            STUCK: f"value stuck at {value:.4g} {unit} for {threshold:g} s",
            QUALITY: "source reports bad quality",
            OFFLINE: "device offline (Sparkplug DEATH / bad quality, no value)",
            STALE: f"no reading for {threshold:g} s",
        }[condition]
        return f"{sid} sensor fault: {text}"

    def severity(self, condition: int, ref: SensorRef) -> Severity:
        """A blind gas detector is lost coverage (medium); other faults are maintenance."""
        if ref.sensor.kind == "gas" and condition in (OFFLINE, STALE, RANGE):
            return "medium"
        return "low"


@njit(**KERNEL)
def _at_rest(dec, si):
    """Every data-driven fault of the sensor at rest (see :func:`detectors.decision.idle`)."""
    return (
        idle(dec, RANGE, si)
        and idle(dec, SPIKE, si)
        and idle(dec, STUCK, si)
        and idle(dec, QUALITY, si)
        and idle(dec, OFFLINE, si)
    )


@njit(**KERNEL)
def _health(dec, groups, bounds, t, v, q, late, params, last_v, last_seen, ib, fb):
    lo_, hi_, margin_, jump_, stuck_, stale_ = params
    since = dec[2]  # stale: decided here, the bank only holds the activation time
    bad_q = float(BAD_QUALITY)
    k = 0
    for g in range(len(groups)):  # one sensor's rows at a time: its settings in registers
        si = groups[g]
        lo, hi, lim, stuck = lo_[si], hi_[si], jump_[si], stuck_[si]
        below, above = lo - margin_[si], hi + margin_[si]
        spike_on, stuck_on = not np.isnan(lim), not np.isnan(stuck)
        limit = stale_[si]
        lim_s = limit / 1e9
        prev_v, prev = last_v[si], last_seen[si]
        stale_since = since[STALE, si]
        rest = _at_rest(dec, si)
        for i in range(bounds[g], bounds[g + 1]):
            if late[i]:
                continue
            ti, x = t[i], v[i]
            bad, nan = q[i] == BAD_QUALITY, np.isnan(x)
            good = not bad and not nan  # usable
            outside = False
            d = np.nan
            quiet = False
            if good:
                outside = x < below or x > above
                d = abs(x - prev_v)
                # Nothing sets a fault at rest: every step would be a no-op (most readings).
                quiet = rest and not outside and not (spike_on and d > lim)
                quiet = quiet and not (stuck_on and d == 0.0)
            if not quiet:
                if good:
                    bound = hi if x > hi else lo
                    code, act = step(dec, RANGE, si, ti, outside, not outside)
                    if code != 0:
                        emit(ib, fb, k, si, RANGE, code > 0, ti, act, x, bound)
                        k += 1
                    if not np.isnan(d):
                        if spike_on:
                            code, act = step(dec, SPIKE, si, ti, d > lim, not d > lim)
                            if code != 0:
                                emit(ib, fb, k, si, SPIKE, code > 0, ti, act, d, lim)
                                k += 1
                        if stuck_on:
                            code, act = step(dec, STUCK, si, ti, d == 0.0, d > 0.0)
                            if code != 0:
                                emit(ib, fb, k, si, STUCK, code > 0, ti, act, x, stuck)
                                k += 1
                offline = bad and nan
                faulty = (bad or nan) and not offline
                qv = float(q[i])
                code, act = step(dec, QUALITY, si, ti, faulty, good)
                if code != 0:
                    emit(ib, fb, k, si, QUALITY, code > 0, ti, act, qv, bad_q)
                    k += 1
                code, act = step(dec, OFFLINE, si, ti, offline, good)
                if code != 0:
                    emit(ib, fb, k, si, OFFLINE, code > 0, ti, act, qv, bad_q)
                    k += 1
                rest = _at_rest(dec, si)
            if good:
                prev_v = x
            # Stale: a gap longer than the limit is raised (at last reading + limit) and
            # cleared here; a silence the clock already raised is only cleared.
            if stale_since != 0:
                emit(ib, fb, k, si, STALE, False, ti, stale_since, (ti - prev) / 1e9, lim_s)
                k += 1
                stale_since = 0
            elif limit > 0 and prev != 0 and ti - prev > limit:
                emit(ib, fb, k, si, STALE, True, prev + limit, prev + limit, lim_s, lim_s)
                emit(ib, fb, k + 1, si, STALE, False, ti, prev + limit, (ti - prev) / 1e9, lim_s)
                k += 2
            prev = ti
        last_v[si], last_seen[si] = prev_v, prev
        since[STALE, si] = stale_since
    return k
