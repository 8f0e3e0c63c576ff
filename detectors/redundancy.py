"""Voting and disagreement across groups of sensors (redundant instruments, gas detectors).

* ``GAS_VOTE``: at least k of the n gas detectors of one unit at or above their first
  alarm level (H) at the same time (latest value of each). A real leak usually raises
  several detectors in turn; one alone is more often a fault (docs/domain.md 5.4).
* ``FAULT_DISAGREE``: redundant sensors (same ``redundancy_group`` in the registry) further
  apart than ``tolerance`` (default 5 % of span) for ``on_delay_s``: one of them is
  drifting or failed, a maintenance (``FAULT``-like) matter.

Rows are aligned as in the multivariate detector: each reading of a member yields a row
holding every member's latest value (sample-and-hold; a forward fill per member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from common.conditions import ConditionEvent, State, event_id, ns_to_datetime, occurrence_id
from common.registry import Registry
from detectors.base import Transitions
from detectors.batch import ffill, group_starts
from detectors.decision import Decision

VOTE_K = 2
DISAGREE_FRACTION = 0.05
DISAGREE_ON_DELAY_S = 30.0


@dataclass(frozen=True)
class Group:
    """A set of sensors judged together."""

    key: str  # unit id (vote) or redundancy group name (disagree)
    condition: str  # GAS_VOTE or FAULT_DISAGREE
    members: np.ndarray  # dense sensor indices
    limits: np.ndarray  # per member: H level (vote); tolerance in [0] (disagree)
    k: int = VOTE_K


def groups_from_registry(registry: Registry) -> list[Group]:
    """Gas voting per unit (>= 2 detectors with an H level) and redundancy groups."""
    out = []
    for unit_id, (_site, unit) in sorted(registry.units.items()):
        gas = [s for s in unit.sensors if s.kind == "gas" and s.limits.h is not None]
        if len(gas) >= 2:
            idx = np.array([_index(registry, s.id) for s in gas])
            h = np.array([float(s.limits.h or 0.0) for s in gas])
            out.append(Group(unit_id, "GAS_VOTE", idx, h, min(VOTE_K, len(gas))))
    redundant: dict[str, list[Any]] = {}
    for ref in registry:
        name = ref.sensor.detection.redundancy_group
        if name:
            redundant.setdefault(name, []).append(ref)
    for name, refs in sorted(redundant.items()):
        if len(refs) >= 2:
            lo, hi = refs[0].sensor.range
            tol = DISAGREE_FRACTION * (hi - lo)
            idx = np.array([r.index for r in refs])
            out.append(Group(name, "FAULT_DISAGREE", idx, np.full(len(refs), tol)))
    return out


def _index(registry: Registry, sensor_id: str) -> int:
    ref = registry.sensor(sensor_id)
    assert ref is not None
    return ref.index


class GroupDetector:
    """Votes and disagreement per group, state held per group."""

    name = "redundancy"

    def __init__(self, groups: list[Group], n_sensors: int) -> None:
        self.groups = groups
        on = np.array(
            [DISAGREE_ON_DELAY_S if g.condition == "FAULT_DISAGREE" else 0.0 for g in groups]
        )
        self.decision = Decision(len(groups), on, 0.0)
        self.last = [np.full(len(g.members), np.nan) for g in groups]
        self.member_of: list[list[tuple[int, int]]] = [[] for _ in range(n_sensors)]
        for gi, g in enumerate(groups):
            for j, s in enumerate(g.members):
                self.member_of[int(s)].append((gi, j))

    def process(
        self, s: np.ndarray, t: np.ndarray, v: np.ndarray, usable: np.ndarray
    ) -> Transitions:
        """Rows sorted by (sensor, time) -> transitions (``sensor`` = group index)."""
        g_rows, g_ids, g_t, g_score, g_set, g_reset, g_thr = [], [], [], [], [], [], []
        rows = np.flatnonzero(usable)
        for gi, g in enumerate(self.groups):  # a loop over groups and members, not readings
            mine = rows[np.isin(s[rows], g.members)]
            if len(mine) == 0:
                continue
            mine = mine[np.argsort(t[mine], kind="stable")]
            starts = group_starts(np.zeros(len(mine), np.int64))
            x = np.column_stack(
                [
                    ffill(s[mine] == m, v[mine], starts, np.full(len(mine), self.last[gi][j]))
                    for j, m in enumerate(g.members)
                ]
            )
            self.last[gi] = x[-1].copy()
            if g.condition == "GAS_VOTE":
                with np.errstate(invalid="ignore"):
                    score = (x >= g.limits).sum(axis=1).astype(float)
                set_, reset, thr = score >= g.k, score < g.k, float(g.k)
            else:
                full = ~np.isnan(x).any(axis=1)
                spread = np.where(full, np.nanmax(x, axis=1) - np.nanmin(x, axis=1), np.nan)
                tol = float(g.limits[0])
                with np.errstate(invalid="ignore"):
                    set_, reset = spread > tol, spread < 0.8 * tol
                score, thr = spread, tol
            ok = ~np.isnan(score)
            g_rows.append(mine[ok])
            g_ids.append(np.full(int(ok.sum()), gi))
            g_t.append(t[mine][ok])
            g_score.append(score[ok])
            g_set.append(set_[ok])
            g_reset.append(reset[ok])
            g_thr.append(np.full(int(ok.sum()), thr))
        if not g_ids:
            return Transitions(*(np.array([], d) for d in "iibiffi"))
        gid, tt = np.concatenate(g_ids), np.concatenate(g_t)
        order = np.lexsort((tt, gid))
        cols = [np.concatenate(c)[order] for c in (g_score, g_set, g_reset, g_thr)]
        gid, tt = gid[order], tt[order]
        idx, rises, activated = self.decision.decide(gid, tt, cols[1], cols[2])
        return Transitions(
            gid[idx], np.zeros(len(idx), np.int64), rises, tt[idx], cols[0][idx], cols[3][idx],
            activated,
        )  # fmt: skip

    def snapshot(self, gi: int) -> dict[str, Any]:
        """State of one group."""
        return {
            "last": [None if np.isnan(x) else float(x) for x in self.last[gi]],
            **{k: int(a[gi]) for k, a in self.decision.state().items()},
        }

    def restore(self, gi: int, snap: dict[str, Any]) -> None:
        """Load :meth:`snapshot` output."""
        last = [np.nan if x is None else x for x in snap.get("last", [])]
        if len(last) == len(self.last[gi]):
            self.last[gi] = np.array(last, float)
        for k, a in self.decision.state().items():
            a[gi] = snap[k]

    def events(self, found: Transitions, registry: Registry) -> list[ConditionEvent]:
        """Condition events naming every member of the group."""
        out = []
        for gi, _c, active, ts, value, threshold, activated in found.rows():
            g = self.groups[gi]
            refs = [registry.sensors[int(i)] for i in g.members]
            unit = refs[0].unit.id
            state: State = "active" if active else "cleared"
            occurrence = occurrence_id(unit, g.key, g.condition, activated)
            names = ", ".join(r.sensor.id for r in refs)
            if g.condition == "GAS_VOTE":
                text = (
                    f"{unit} {int(value)} of {len(refs)} gas detectors at or above their first "
                    f"level (vote needs {int(threshold)})"
                    if active
                    else f"{unit} gas vote back below {int(threshold)} detectors"
                )
                severity = "critical"
            else:
                text = (
                    f"redundant sensors {names} disagree by {value:.3g} "
                    f"{refs[0].sensor.unit} (tolerance {threshold:g})"
                    if active
                    else f"redundant sensors {names} agree again"
                )
                severity = "low"
            out.append(
                ConditionEvent(
                    event_id=event_id(occurrence, state),
                    occurrence_id=occurrence,
                    state=state,
                    site=refs[0].site.id,
                    unit=unit,
                    sensors=tuple(r.sensor.id for r in refs),
                    condition=g.condition,
                    severity=severity,
                    value=float(value),
                    threshold=float(threshold),
                    detector=self.name,
                    ts=ns_to_datetime(ts),
                    activated_at=ns_to_datetime(activated),
                    explanation=text,
                )
            )
        return out
