"""Time-weighted exposure of toxic gases: 15-min STEL and 8-h TWA rolling averages.

Each usable reading contributes ``value x dt`` (dt = time since the sensor's previous
reading, capped at ``hold_s``: the value is taken to hold since then). The rolling
average at a reading is the sum of contributions in its window divided by the window
length. Contributions are kept in a small ring of time buckets per sensor (1-min buckets
for the STEL, 15-min buckets for the TWA), so the window start is resolved to a bucket:
the window covers between (n-1) and n buckets plus the current partial one. State:
15 + 32 buckets, under 0.4 KB per sensor.
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

# (condition, bucket seconds, buckets in the window, window seconds)
WINDOWS = (("STEL", 60, 15, 900.0), ("TWA", 900, 32, 28800.0))
RESET_FRACTION = 0.9


class ExposureDetector(Detector):
    """``STEL`` / ``TWA`` alarms where a per-sensor limit is configured (NaN = off)."""

    name = "exposure"
    conditions = tuple(w[0] for w in WINDOWS)

    def __init__(self, stel: np.ndarray, twa: np.ndarray, hold_s: np.ndarray) -> None:
        super().__init__(len(stel))
        self.limit = np.vstack([np.asarray(stel, np.float64), np.asarray(twa, np.float64)])
        self.hold_ns = np.round(np.asarray(hold_s, np.float64) * 1e9).astype(np.int64)
        self.decisions = [Decision(self.n) for _ in WINDOWS]
        self.last_t = self.add_state("last_t", (), np.int64, 0)
        self.rings = [self.add_state(f"{w[0]}_ring", (w[2],), np.float64, 0.0) for w in WINDOWS]
        self.newest = [self.add_state(f"{w[0]}_newest", (), np.int64, -1) for w in WINDOWS]
        self._watched = ~np.isnan(self.limit).all(axis=0)

    def process(self, b: Batch) -> Transitions:
        """Rolling averages at each usable reading of a sensor with a limit."""
        ib, fb = self.out(len(b))
        stel, twa = WINDOWS
        k = _exposure(
            self.bank(), *b.walk, self._watched, self.limit, self.hold_ns,
            self.last_t, self.rings[0], self.newest[0], self.rings[1], self.newest[1],
            np.array([stel[1], twa[1]], np.int64) * 1_000_000_000,
            np.array([stel[3], twa[3]]), ib, fb,
        )  # fmt: skip
        return from_kernel(ib[:k], fb[:k])

    def describe(
        self, condition: int, active: bool, value: float, threshold: float, ref: SensorRef
    ) -> str:
        """E.g. ``TK601-GD-01 benzene 15-min average 11.2 mg/m3 above STEL 10 mg/m3``."""
        sensor = ref.sensor
        label = "15-min" if condition == 0 else "8-h"
        name = self.conditions[condition]
        if active:
            return (
                f"{sensor.id} {sensor.substance} {label} average {value:.3g} {sensor.unit} "
                f"at or above {name} {threshold:g} {sensor.unit}"
            )
        return f"{sensor.id} {sensor.substance} {label} average back to {value:.3g} {sensor.unit}"

    def severity(self, condition: int, ref: SensorRef) -> Severity:
        """Exposure limits protect people: high."""
        return "high"


@njit(**KERNEL)
def _bucket_sum(ring, si, newest, bucket, c, pre, known):
    """Add ``c`` to ``bucket`` of one sensor's ring (rolling it forward) and sum the ring.

    ``pre`` is the sum of all but the newest bucket when ``known``: while readings land
    in the newest bucket (most of them) the sum costs one addition, and it is bit for
    bit the full left-to-right sum. Returns (sum, newest, pre, known).
    """
    nb = ring.shape[1]
    shift = nb if newest < 0 else bucket - newest
    if shift > 0:
        for j in range(nb):
            ring[si, j] = ring[si, j + shift] if j + shift < nb else 0.0
        newest = bucket
        ring[si, nb - 1] += c
        known = False
    elif nb - 1 + shift >= 0:  # not after the newest bucket (duplicate or same bucket)
        ring[si, nb - 1 + shift] += c
        if shift != 0:
            known = False
    if not known:
        pre = 0.0
        for j in range(nb - 1):
            pre += ring[si, j]
        known = True
    return pre + ring[si, nb - 1], newest, pre, known


@njit(**KERNEL)
def _exposure(
    dec, groups, bounds, t, v, q, late, watched, limit, hold_ns, last_t, ring0, newest0, ring1,
    newest1, width, window_s, ib, fb,
):  # fmt: skip
    k = 0
    w0, w1 = width[0], width[1]
    for g in range(len(groups)):  # one sensor's rows at a time: its state in registers
        si = groups[g]
        if not watched[si]:
            continue
        hold = hold_ns[si]
        prev = last_t[si]
        lim0, lim1 = limit[0, si], limit[1, si]
        nw0, nw1 = newest0[si], newest1[si]
        pre0 = pre1 = 0.0
        known0 = known1 = False
        rest0, rest1 = idle(dec, 0, si), idle(dec, 1, si)  # a step without set is a no-op
        for i in range(bounds[g], bounds[g + 1]):
            x = v[i]
            if late[i] or q[i] == BAD_QUALITY or np.isnan(x):
                continue
            ti = t[i]
            dt = hold if prev == 0 else min(ti - prev, hold)
            prev = ti
            c = x * (dt / 1e9)
            for w in range(2):
                if w == 0:
                    total, nw0, pre0, known0 = _bucket_sum(
                        ring0, si, nw0, ti // w0, c, pre0, known0
                    )
                    lim = lim0
                else:
                    total, nw1, pre1, known1 = _bucket_sum(
                        ring1, si, nw1, ti // w1, c, pre1, known1
                    )
                    lim = lim1
                avg = total / window_s[w]
                if np.isnan(lim):
                    continue
                set_ = avg >= lim
                if set_ or not (rest0 if w == 0 else rest1):
                    code, act = step(dec, w, si, ti, set_, avg < lim * RESET_FRACTION)
                    if code != 0:
                        emit(ib, fb, k, si, w, code > 0, ti, act, avg, lim)
                        k += 1
                    if w == 0:
                        rest0 = idle(dec, 0, si)
                    else:
                        rest1 = idle(dec, 1, si)
        last_t[si] = prev
        newest0[si], newest1[si] = nw0, nw1
    return k
