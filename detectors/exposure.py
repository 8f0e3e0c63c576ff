"""Time-weighted exposure of toxic gases: 15-min STEL and 8-h TWA rolling averages.

Each usable reading contributes ``value x dt`` (dt = time since the sensor's previous
reading, capped at ``hold_s``: the value is taken to hold since then). The rolling
average at a reading is the sum of contributions in its window divided by the window
length. Contributions inside the batch are summed exactly (segmented cumulative sums and a
``searchsorted`` for the window start); older ones come from a small ring of time buckets
per sensor (1-min buckets for the STEL, 15-min buckets for the TWA), so the window start
is resolved to a bucket: the window covers between (n-1) and n buckets plus the current
partial one. State: 15 + 32 buckets, under 0.4 KB per sensor.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from common.conditions import Severity
from common.registry import SensorRef
from detectors.base import Detector, Score
from detectors.batch import Batch, group_ends, group_starts, previous, segmented_cumsum
from detectors.decision import Decision

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
        self._pending: list[tuple[np.ndarray, ...]] = []

    def score(self, b: Batch) -> Iterator[Score]:
        """Rolling averages at each reading of a sensor with a limit."""
        watched = ~np.isnan(self.limit).all(axis=0)
        valid = b.usable & watched[b.s]
        rows = np.flatnonzero(valid)
        self._pending = []
        if len(rows) == 0:
            return
        s, t, v = b.s[rows], b.t[rows], b.v[rows]
        starts, ends = group_starts(s), group_ends(s)
        prev = previous(t, starts, self.last_t[s])
        dt = np.where(prev == 0, self.hold_ns[s], np.minimum(t - prev, self.hold_ns[s]))
        c = v * (dt / 1e9)
        cs = segmented_cumsum(c, starts)
        gid = np.cumsum(starts) - 1
        first = np.flatnonzero(starts)[gid]
        for wi, (_, bucket_s, nb, window_s) in enumerate(WINDOWS):
            bucket = t // (bucket_s * 1_000_000_000)
            # In-batch part: rows of the group with bucket > current - nb.
            b0 = int(bucket.min())
            width = int(bucket.max()) - b0 + nb + 2
            key = gid * width + (bucket - b0)
            lo = np.searchsorted(key, key - nb + 1, side="left")
            lo = np.maximum(lo, first)
            inside = cs - np.where(lo > first, cs[np.maximum(lo - 1, 0)], 0.0)
            # Earlier batches: ring entries with id > current - nb.
            ring, newest = self.rings[wi][s], self.newest[wi][s]
            suffix = np.concatenate(
                [np.cumsum(ring[:, ::-1], axis=1)[:, ::-1], np.zeros((len(s), 1))], axis=1
            )
            skip = np.where(newest < 0, nb, np.clip(bucket - newest, 0, nb))
            carried = suffix[np.arange(len(s)), skip]
            avg = np.full(len(b), np.nan)
            avg[rows] = (inside + carried) / window_s
            limit = self.limit[wi, b.s]
            ok = valid & ~np.isnan(limit)
            with np.errstate(invalid="ignore"):
                yield Score(wi, ok, avg >= limit, avg < limit * RESET_FRACTION, avg, limit)
            self._pending.append((s, ends, bucket, c))
        self._pending.append((s[ends], t[ends]))

    def learn(self, b: Batch) -> None:
        """Fold the batch's contributions into the bucket rings."""
        if not self._pending:
            return
        *per_window, (sensors, last_t) = self._pending
        for wi, (s, ends, bucket, c) in enumerate(per_window):
            nb = WINDOWS[wi][2]
            ring, newest = self.rings[wi], self.newest[wi]
            new_newest = bucket[ends]
            shift = np.where(newest[sensors] < 0, nb, new_newest - newest[sensors])
            cols = np.arange(nb)[None, :] + shift[:, None]
            old = ring[sensors]
            moved = np.where(
                cols < nb, old[np.arange(len(sensors))[:, None], np.minimum(cols, nb - 1)], 0.0
            )
            gid = np.cumsum(group_starts(s)) - 1
            slot = nb - 1 - (new_newest[gid] - bucket)
            keep = slot >= 0
            np.add.at(moved, (gid[keep], slot[keep]), c[keep])
            ring[sensors] = moved
            newest[sensors] = new_newest
        self.last_t[sensors] = last_t
        self._pending = []

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
