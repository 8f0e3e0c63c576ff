"""Vectorised limit alarms (LL/L/H/HH) with deadband, over per-sensor state arrays.

Scoring is the comparison with a limit; the decision is hysteresis: a high condition
becomes active at ``value >= limit`` and clears only at ``value < limit - deadband``
(mirrored for low limits). Between the two the previous state holds, which is a
forward fill within each sensor's readings: done with ``np.maximum.accumulate`` over
positions, not a loop per reading. Bad-quality and NaN readings decide nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LEVELS = ("HH", "H", "L", "LL")
_HIGH = {"HH": True, "H": True, "L": False, "LL": False}
BAD_QUALITY = 2


@dataclass(frozen=True, slots=True)
class Transitions:
    """Condition transitions found in one batch (parallel arrays)."""

    sensor: np.ndarray  # dense sensor index
    level: np.ndarray  # index into LEVELS
    active: np.ndarray  # bool: True = became active, False = cleared
    ts_ns: np.ndarray
    value: np.ndarray
    threshold: np.ndarray
    activated_ns: np.ndarray  # activation time of the occurrence (for clears: when it began)

    def __len__(self) -> int:
        return len(self.sensor)


class LimitDetector:
    """Limit alarms for every sensor of a registry, state held as arrays."""

    name = "limits"

    def __init__(self, limits: dict[str, np.ndarray], deadband: np.ndarray) -> None:
        self.limits = np.vstack([limits[level.lower()] for level in LEVELS])  # (4, n)
        self.deadband = np.asarray(deadband, np.float64)
        # 0 = inactive, else the source time (ns) at which the condition became active
        self.active_since = np.zeros(self.limits.shape, np.int64)

    def process(
        self, sensor: np.ndarray, ts_ns: np.ndarray, value: np.ndarray, quality: np.ndarray
    ) -> Transitions:
        """Advance the state with a batch of readings; return the transitions."""
        order = np.lexsort((ts_ns, sensor))  # by sensor, then time; stable
        s, t, v, q = sensor[order], ts_ns[order], value[order], quality[order]
        n = len(s)
        starts = np.ones(n, bool)
        starts[1:] = s[1:] != s[:-1]
        usable = (q != BAD_QUALITY) & ~np.isnan(v)
        out: list[tuple[np.ndarray, ...]] = []
        for li, level in enumerate(LEVELS):
            limit = self.limits[li, s]
            configured = ~np.isnan(limit)
            if not configured.any():
                continue
            band = self.deadband[s]
            with np.errstate(invalid="ignore"):
                if _HIGH[level]:
                    set_, reset = v >= limit, v < limit - band
                else:
                    set_, reset = v <= limit, v > limit + band
            decided = usable & configured & (set_ | reset)
            out.append(self._level(li, s, t, v, limit, starts, decided, set_))
        return _concat(out)

    def _level(
        self,
        li: int,
        s: np.ndarray,
        t: np.ndarray,
        v: np.ndarray,
        limit: np.ndarray,
        starts: np.ndarray,
        decided: np.ndarray,
        set_: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        n = len(s)
        idx = np.arange(n)
        since0 = self.active_since[li, s]  # state before the batch, per reading's sensor
        # Forward fill of the last decision within each sensor; a group's first row
        # carries the sensor's prior state when it decides nothing itself.
        val = np.where(decided, set_, since0 != 0)
        anchor = decided | starts
        last = np.maximum.accumulate(np.where(anchor, idx, -1))
        state = val[last]
        prev = np.empty(n, bool)
        prev[1:] = state[:-1]
        prev[starts] = since0[starts] != 0
        rises = state & ~prev
        falls = ~state & prev
        # Activation time of the current occurrence at each row.
        act_val = np.where(rises, t, since0)
        act_anchor = rises | starts
        act_last = np.maximum.accumulate(np.where(act_anchor, idx, -1))
        # A clear belongs to the occurrence that began at the last rise (or before the batch).
        activated = np.where(state | falls, act_val[act_last], 0)
        ends = np.ones(n, bool)
        ends[:-1] = starts[1:]
        self.active_since[li, s[ends]] = np.where(state[ends], activated[ends], 0)
        hit = rises | falls
        return (
            s[hit],
            np.full(int(hit.sum()), li),
            rises[hit],
            t[hit],
            v[hit],
            limit[hit],
            activated[hit],
        )

    def snapshot(self, sensors: np.ndarray, ids: np.ndarray) -> dict[str, Any]:
        """JSON-able state of some sensors: only active conditions are stored."""
        out: dict[str, Any] = {}
        for li, level in enumerate(LEVELS):
            sub = self.active_since[li, sensors]
            for sid, since in zip(ids[sensors][sub != 0], sub[sub != 0], strict=True):
                out.setdefault(str(sid), {})[level] = int(since)
        return out

    def restore(self, state: dict[str, Any], index_of: dict[str, int]) -> None:
        """Load a snapshot made by :meth:`snapshot` (sensors no longer known are skipped)."""
        for sid, levels in state.items():
            i = index_of.get(sid)
            if i is None:
                continue
            for level, since in levels.items():
                self.active_since[LEVELS.index(level), i] = int(since)


def _concat(parts: list[tuple[np.ndarray, ...]]) -> Transitions:
    if not parts:
        empty_i = np.array([], np.int64)
        return Transitions(
            empty_i,
            empty_i,
            np.array([], bool),
            empty_i,
            np.array([], float),
            np.array([], float),
            empty_i,
        )
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    order = np.argsort(cols[3], kind="stable")  # by time, so events go out in order
    return Transitions(*(c[order] for c in cols))
