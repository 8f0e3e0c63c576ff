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

from collections.abc import Iterator

import numpy as np

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Score, Transitions, concat
from detectors.batch import BAD_QUALITY, Batch, group_ends, group_starts, previous
from detectors.decision import Decision

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
        self._next_last_v: tuple[np.ndarray, np.ndarray] | None = None

    def score(self, b: Batch) -> Iterator[Score]:
        """Verdicts for the data-driven faults (stale is handled in :meth:`process`)."""
        usable = b.usable
        in_time = ~b.late
        v = b.v
        with np.errstate(invalid="ignore"):
            outside = (v < self.lo[b.s] - self.margin[b.s]) | (v > self.hi[b.s] + self.margin[b.s])
        bound = np.where(v > self.hi[b.s], self.hi[b.s], self.lo[b.s])
        yield Score(RANGE, usable, outside, ~outside, v, bound)
        rows = np.flatnonzero(usable)
        self._next_last_v = None
        if len(rows):
            s = b.s[rows]
            starts, ends = group_starts(s), group_ends(s)
            prev = previous(v[rows], starts, self.last_v[s])
            step = np.full(len(b), np.nan)
            step[rows] = np.abs(v[rows] - prev)
            self._next_last_v = (s[ends], v[rows][ends])
            with np.errstate(invalid="ignore"):
                jump = step > self.jump[b.s]
                flat = step == 0.0
                moved = step > 0.0
            has_step = ~np.isnan(step)
            spiky = has_step & ~np.isnan(self.jump[b.s])
            yield Score(SPIKE, spiky, jump, ~jump, step, self.jump[b.s])
            stuck = has_step & ~np.isnan(self.stuck_s[b.s])
            yield Score(STUCK, stuck, flat, moved, v, self.stuck_s[b.s])
        nan = np.isnan(v)
        bad = b.q == BAD_QUALITY
        offline = bad & nan
        faulty = (bad | nan) & ~offline
        good = ~bad & ~nan
        q = b.q.astype(np.float64)
        yield Score(QUALITY, in_time, faulty, good, q, np.full(len(b), float(BAD_QUALITY)))
        yield Score(OFFLINE, in_time, offline, good, q, np.full(len(b), float(BAD_QUALITY)))

    def process(self, b: Batch) -> Transitions:
        """Data-driven faults plus stale gaps between readings."""
        found = super().process(b)
        return concat([found, self._gaps(b)])

    def learn(self, b: Batch) -> None:
        """Remember each sensor's last usable value."""
        if self._next_last_v is not None:
            sensors, values = self._next_last_v
            self.last_v[sensors] = values
            self._next_last_v = None

    def _gaps(self, b: Batch) -> Transitions:
        rows = np.flatnonzero(~b.late)
        if len(rows) == 0:
            return concat([])
        s, t = b.s[rows], b.t[rows]
        starts, ends = group_starts(s), group_ends(s)
        seen0 = self.last_seen[s]
        limit = self.stale_ns[s]
        prev = previous(t, starts, seen0)
        watched = limit > 0
        gap = watched & (prev != 0) & (t - prev > limit)
        since = self.decisions[STALE].active_since
        flagged = starts & (since[s] != 0)  # the clock already reported this silence
        # A gap yields "active" at prev + limit and "cleared" at the new reading; when the
        # clock already raised it, only the clear (named by the clock's activation time).
        act_rows = gap & ~flagged
        act_t = prev + limit
        clear_act = np.where(flagged, since[s], act_t)
        clear_rows = gap | flagged
        self.last_seen[s[ends]] = t[ends]
        since[np.unique(s[clear_rows])] = 0
        a, c = np.flatnonzero(act_rows), np.flatnonzero(clear_rows)
        gap_s = (t - prev) / 1e9
        lim_s = limit / 1e9
        return Transitions(
            np.concatenate([s[a], s[c]]),
            np.full(len(a) + len(c), STALE, np.int64),
            np.concatenate([np.ones(len(a), bool), np.zeros(len(c), bool)]),
            np.concatenate([act_t[a], t[c]]),
            np.concatenate([lim_s[a], gap_s[c]]),
            np.concatenate([lim_s[a], lim_s[c]]),
            np.concatenate([act_t[a], clear_act[c]]),
        )

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
