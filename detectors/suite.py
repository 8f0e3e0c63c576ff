"""The detector suite: one sorted batch, every detector, one state for snapshots.

Readings older than the newest one already processed for their sensor are "late": they
are stored but decide nothing (delays and windows are in source time, which must not run
backwards for a sensor).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import Detector, Transitions
from detectors.batch import Batch, advance_clock, sort_batch


class Suite:
    """Detectors sharing the per-sensor clock of the last processed reading."""

    def __init__(self, detectors: list[Detector], n: int) -> None:
        self.detectors = detectors
        self.n = n
        self.last_ts = np.zeros(n, np.int64)

    def by_name(self, name: str) -> Detector:
        """The detector called ``name``."""
        for d in self.detectors:
            if d.name == name:
                return d
        raise KeyError(name)

    def process(
        self, sensor: np.ndarray, ts_ns: np.ndarray, value: np.ndarray, quality: np.ndarray
    ) -> list[tuple[Detector, Transitions]]:
        """Run every detector on one batch; return each one's transitions."""
        return self.process_batch(self.sort(sensor, ts_ns, value, quality))

    def sort(
        self, sensor: np.ndarray, ts_ns: np.ndarray, value: np.ndarray, quality: np.ndarray
    ) -> Batch:
        """The batch sorted by (sensor, time), late rows flagged against the suite's clock."""
        return sort_batch(sensor, ts_ns, value, quality, self.last_ts)

    def process_batch(self, b: Batch) -> list[tuple[Detector, Transitions]]:
        """Run every detector on a batch from :meth:`sort`, then advance the clock."""
        out = [(d, d.process(b)) for d in self.detectors]
        advance_clock(self.last_ts, b.groups, b.bounds, b.t, b.late)
        return out

    def tick(self, now_ns: int) -> list[tuple[Detector, Transitions]]:
        """Clock-driven transitions (stale sensors)."""
        return [(d, d.tick(now_ns)) for d in self.detectors]

    def reset(self) -> None:
        """Forget all state."""
        self.last_ts[:] = 0
        for d in self.detectors:
            d.reset()

    def snapshot(self, sensors: np.ndarray, ids: np.ndarray) -> dict[str, Any]:
        """State of some sensors, every detector (for ``common.store.state_json``)."""
        out: dict[str, Any] = {
            "sensors": [str(i) for i in ids[sensors]],
            "last_ts": np.ascontiguousarray(self.last_ts[sensors]),
        }
        for d in self.detectors:
            out[d.name] = d.snapshot(sensors, ids)
        return out

    def restore(self, snap: dict[str, Any], index_of: dict[str, int]) -> None:
        """Load a snapshot made by :meth:`snapshot`."""
        for sid, ts in zip(snap.get("sensors", []), snap.get("last_ts", []), strict=True):
            i = index_of.get(sid)
            if i is not None:
                self.last_ts[i] = int(ts)
        for d in self.detectors:
            if d.name in snap:
                d.restore(snap[d.name], index_of)

    def state_bytes(self) -> int:
        """Bytes of state arrays (all sensors)."""
        total = self.last_ts.nbytes
        for d in self.detectors:
            total += sum(a.nbytes for a in d.state().values())
        return total
