"""Ground truth of a run: every injected event, what it affected, and when a correct
system could first have known about it.

For a process hazard the "earliest knowable" time is when the *true* value of one of
the sensors it affects first crosses a configured alarm limit (H/HH upwards, L/LL
downwards): before that no limit-based system can be right to alarm. Instrument
response (e.g. a gas head's T90) comes on top, so real detection delays include it.
A leak affects the gas detectors its plume reaches: those where the leak's own
contribution exceeds 10 % of the detector's first alarm limit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.registry import Registry
from simulators.scenario import Event

LEVELS = ("HH", "H", "L", "LL")
LEAK_SHARE = 0.10


def iso(ns: float | None) -> str | None:
    """Epoch ns -> RFC 3339 UTC (None stays None)."""
    if ns is None or not np.isfinite(ns):
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


class Truth:
    """Collects crossings while the simulation runs; writes JSON lines at the end."""

    def __init__(self, registry: Registry, events: tuple[Event, ...], start_ns: int,
                 candidates: dict[str, np.ndarray]) -> None:  # fmt: skip
        self.registry = registry
        self.events = events
        self.start_ns = start_ns
        self.limits = np.vstack([registry.limit_array(lv.lower()) for lv in LEVELS])  # (4, n)
        first = np.where(np.isnan(self.limits[1]), self.limits[0], self.limits[1])
        lo, hi = registry.range_arrays()
        self.leak_threshold = np.where(np.isnan(first), 0.05 * (hi - lo), first) * LEAK_SHARE
        self.candidates = candidates  # event id -> dense sensor indices it may affect
        self.first = {e.id: np.full((4, len(candidates[e.id])), np.nan) for e in events}
        self.beyond_until = {e.id: np.nan for e in events}
        self.peak_share = {e.id: np.zeros(len(candidates[e.id])) for e in events}

    def update(self, t: float, true: np.ndarray, leak_part: dict[str, np.ndarray]) -> None:
        """Record limit crossings of hazards' sensors at simulated time ``t``."""
        for e in self.events:
            if e.category != "hazard" or t < e.start:
                continue
            idx = self.candidates[e.id]
            v = true[idx]
            lim = self.limits[:, idx]
            with np.errstate(invalid="ignore"):
                beyond = np.vstack([v >= lim[0], v >= lim[1], v <= lim[2], v <= lim[3]])
            first = self.first[e.id]
            first[beyond & np.isnan(first)] = t
            if beyond.any():
                self.beyond_until[e.id] = t
            if e.id in leak_part:
                share = leak_part[e.id][idx] / self.leak_threshold[idx]
                self.peak_share[e.id] = np.maximum(self.peak_share[e.id], share)

    def affected(self, e: Event) -> np.ndarray:
        """Dense indices of the sensors the event affected."""
        idx = self.candidates[e.id]
        if e.kind == "leak":
            return idx[self.peak_share[e.id] >= 1.0]
        return idx

    def records(self) -> list[dict[str, Any]]:
        """One JSON-able record per event."""
        out = []
        s = self.start_ns
        for e in self.events:
            idx = self.candidates[e.id]
            keep = np.isin(idx, self.affected(e))
            first = self.first[e.id][:, keep]
            ids = self.registry.sensor_ids[idx[keep]].tolist()
            crossings = {
                sid: {lv: iso(s + first[li, k] * 1e9) for li, lv in enumerate(LEVELS)
                      if not np.isnan(first[li, k])}
                for k, sid in enumerate(ids)
            }  # fmt: skip
            crossings = {k: v for k, v in crossings.items() if v}
            knowable = np.nanmin(first) if e.category == "hazard" and first.size and not np.all(
                np.isnan(first)) else None  # fmt: skip
            params = e.model_dump(
                exclude_defaults=True,
                exclude={"kind", "id", "start", "duration", "unit", "sensors"},
            )
            out.append(
                {
                    "type": "event",
                    "id": e.id,
                    "kind": e.kind,
                    "category": e.category,
                    "unit": e.unit,
                    "start": iso(s + e.start * 1e9),
                    "end": iso(s + e.end * 1e9),
                    "sensors": ids,
                    "params": params,
                    "first_knowable": None if knowable is None else iso(s + knowable * 1e9),
                    "limit_crossings": crossings,
                    "beyond_limits_until": iso(s + self.beyond_until[e.id] * 1e9),
                }
            )
        return out


def write_truth(path: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Write the run header and one line per event (JSON lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"type": "run", **header}) + "\n")
        for r in records:
            f.write(json.dumps(r) + "\n")


def read_truth(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run header and the event records of a ground-truth file."""
    header: dict[str, Any] = {}
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        if doc.get("type") == "run":
            header = doc
        elif doc.get("type") == "event":
            events.append(doc)
    return header, events
