"""What every detector shares: the decision layer, transitions out, snapshots.

A detector implements :meth:`Detector.process`: one compiled kernel (numba) that walks the
sensor-sorted batch once, scores each reading, runs the shared decision step
(:func:`detectors.decision.step`) for each of its conditions and updates its learnt
state. The base class keeps the decisions as one :class:`~detectors.decision.Bank` and
handles state snapshots generically: every state array has the sensor as its first axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from common.conditions import Severity
from common.registry import SensorRef
from detectors.batch import Batch
from detectors.decision import Bank, Decision, new_out


@dataclass(frozen=True, slots=True)
class Transitions:
    """Condition transitions found in one batch (parallel arrays)."""

    sensor: np.ndarray  # dense sensor index
    condition: np.ndarray  # index into the detector's ``conditions``
    active: np.ndarray  # bool: True = became active, False = cleared
    ts_ns: np.ndarray
    value: np.ndarray
    threshold: np.ndarray
    activated_ns: np.ndarray  # activation time of the occurrence (for clears: when it began)

    def __len__(self) -> int:
        return len(self.sensor)

    def rows(self) -> list[tuple[int, int, bool, int, float, float, int]]:
        """Plain tuples (sensor, condition, active, ts, value, threshold, activated)."""
        return [
            (
                int(self.sensor[i]),
                int(self.condition[i]),
                bool(self.active[i]),
                int(self.ts_ns[i]),
                float(self.value[i]),
                float(self.threshold[i]),
                int(self.activated_ns[i]),
            )
            for i in range(len(self))
        ]


def from_kernel(ib: np.ndarray, fb: np.ndarray) -> Transitions:
    """Transitions from a kernel's output rows, in source-time order (stable)."""
    order = np.argsort(ib[:, 3], kind="stable")
    i, f = ib[order].T.copy(), fb[order].T.copy()  # one contiguous row per column
    return Transitions(i[0], i[1], i[2] != 0, i[3], f[0], f[1], i[4])


def empty_transitions() -> Transitions:
    """No transitions."""
    i = np.array([], np.int64)
    f = np.array([], np.float64)
    return Transitions(i, i, np.array([], bool), i, f, f, i)


class Detector:
    """Base class: subclasses set ``name``/``conditions`` and implement ``score``."""

    name = "detector"
    conditions: tuple[str, ...] = ()
    max_per_reading = 0  # most transitions one reading can cause (0: one per condition)

    def __init__(self, n: int) -> None:
        self.n = n
        self.decisions: list[Decision] = []
        self.arrays: dict[str, np.ndarray] = {}  # learnt state, first axis = sensor
        self._fill: dict[str, Any] = {}
        self._bank: Bank | None = None

    def add_state(self, key: str, shape: tuple[int, ...], dtype: Any, fill: Any) -> np.ndarray:
        """Register a learnt-state array (first axis = sensor) and its empty value."""
        arr = np.full((self.n, *shape), fill, dtype)
        self.arrays[key] = arr
        self._fill[key] = fill
        return arr

    # -- to implement -------------------------------------------------------------
    def process(self, b: Batch) -> Transitions:
        """Score, decide and learn on one sorted batch; return its transitions."""
        raise NotImplementedError

    def tick(self, now_ns: int) -> Transitions:
        """Clock-driven transitions (e.g. stale sensors); default none."""
        return empty_transitions()

    def describe(
        self, condition: int, active: bool, value: float, threshold: float, ref: SensorRef
    ) -> str:
        """Short human explanation of one transition."""
        name = self.conditions[condition]
        verb = "active" if active else "cleared"
        return f"{ref.sensor.id} {name} {verb}: {value:.4g} (threshold {threshold:.4g})"

    def severity(self, condition: int, ref: SensorRef) -> Severity:
        """Severity of a condition for a sensor."""
        return "medium"

    # -- shared machinery -----------------------------------------------------------
    def bank(self) -> tuple[Any, ...]:
        """The decisions' state as 2-D arrays for the kernels (rebuilt if replaced)."""
        if self._bank is None or not self._bank.current(self.decisions):
            self._bank = Bank(self.decisions)
        return self._bank.arrays

    def out(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Kernel output buffers for a batch of ``n`` readings (worst case)."""
        return new_out(n * (self.max_per_reading or len(self.conditions)))

    def state(self) -> dict[str, np.ndarray]:
        """Every state array (decision state and learnt state), keyed by a stable name."""
        out = dict(self.arrays)
        for i, d in enumerate(self.decisions):
            for key, arr in d.state().items():
                out[f"{self.conditions[i]}.{key}"] = arr
        return out

    def reset(self) -> None:
        """Back to the initial (empty) state."""
        for key, arr in self.state().items():
            arr[...] = self._fill.get(key, 0)

    def snapshot(self, sensors: np.ndarray, ids: np.ndarray) -> dict[str, Any]:
        """State of some sensors as numpy arrays, for ``common.store.state_json`` (which
        writes NaN as null); no per-element Python objects on the checkpoint path."""
        out: dict[str, Any] = {"sensors": [str(i) for i in ids[sensors]]}
        for key, arr in self.state().items():
            out[key] = np.ascontiguousarray(arr[sensors])
        return out

    def restore(self, snap: dict[str, Any], index_of: dict[str, int]) -> None:
        """Load a snapshot made by :meth:`snapshot` (sensors no longer known are skipped)."""
        pairs = [(j, index_of.get(sid)) for j, sid in enumerate(snap.get("sensors", []))]
        rows = np.array([j for j, i in pairs if i is not None], np.int64)
        target = np.array([i for _, i in pairs if i is not None], np.int64)
        if len(rows) == 0:
            return
        for key, arr in self.state().items():
            if key not in snap:
                continue  # state added in a newer version starts empty
            raw = np.array(snap[key], dtype=object)[rows]
            if arr.dtype.kind == "f":
                raw = np.where(raw == None, np.nan, raw)  # noqa: E711 - elementwise
            arr[target] = raw.astype(arr.dtype)
