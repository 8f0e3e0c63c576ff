"""Multivariate statistical process control per unit: PCA with Hotelling T² and SPE (Q).

A model is fitted on a normal-operation window of a unit's sensors (standardised, the
principal components explaining ``variance`` of it). Online, each aligned row of the
unit's sensors (optionally smoothed by an EWMA prefilter) is projected: T² measures how
far the row lies inside the model plane, Q how far it lies off it. Their limits come from
the F distribution (T²) and Jackson-Mudholkar (Q) at confidence ``alpha``, times
``limit_factor``. The score is ``max(T²/T²lim, Q/Qlim)``; the condition ``MSPC`` goes
through the shared decision layer (threshold 1, deadband, on/off delays).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# scipy.special, not scipy.stats: the same quantiles without ~0.5 s of import per worker
from scipy.special import fdtri, ndtri

from detectors.base import Transitions
from detectors.batch import ewma, ffill, group_ends, group_starts
from detectors.decision import Decision

MODEL_VERSION = 1


@dataclass(frozen=True)
class PcaModel:
    """A fitted PCA monitoring model (JSON-able through :meth:`to_dict`)."""

    sensors: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # (p, k)
    eigvals: np.ndarray  # (k,)
    t2_limit: float
    q_limit: float
    n_train: int

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T², Q) of rows ``x`` (n, p)."""
        z = (x - self.mean) / self.scale
        t = z @ self.components
        t2 = np.sum(t * t / self.eigvals, axis=1)
        resid = z - t @ self.components.T
        return t2, np.sum(resid * resid, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, np.ndarray):
                out[k] = v.tolist()
        out["sensors"] = list(self.sensors)
        out["version"] = MODEL_VERSION
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PcaModel:
        """Inverse of :meth:`to_dict`."""
        if data.get("version") != MODEL_VERSION:
            raise ValueError(f"unsupported PCA model version {data.get('version')!r}")
        return cls(
            tuple(data["sensors"]),
            np.asarray(data["mean"], float),
            np.asarray(data["scale"], float),
            np.asarray(data["components"], float).reshape(len(data["mean"]), -1),
            np.asarray(data["eigvals"], float),
            float(data["t2_limit"]),
            float(data["q_limit"]),
            int(data["n_train"]),
        )


def fit_pca(
    x: np.ndarray, sensors: tuple[str, ...], variance: float = 0.9, alpha: float = 0.999
) -> PcaModel:
    """Fit on normal rows ``x`` (n, p); constant columns get scale 1."""
    x = np.asarray(x, float)
    x = x[~np.isnan(x).any(axis=1)]
    n, p = x.shape
    if n <= p + 1:
        raise ValueError(f"need more than {p + 1} complete rows to fit, got {n}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    w, v = np.linalg.eigh(np.cov(z.T))
    w, v = np.clip(w[::-1], 1e-12, None), v[:, ::-1]
    k = int(min(np.searchsorted(np.cumsum(w) / w.sum(), variance) + 1, p))
    t2_limit = k * (n - 1) * (n + 1) / (n * (n - k)) * float(fdtri(k, n - k, alpha))
    rest = w[k:]
    if len(rest) == 0 or rest.sum() <= 1e-12:
        q_limit = 1e-9
    else:
        th1, th2, th3 = rest.sum(), (rest**2).sum(), (rest**3).sum()
        h0 = 1 - 2 * th1 * th3 / (3 * th2**2)
        ca = float(ndtri(alpha))
        q_limit = float(
            th1
            * (ca * np.sqrt(2 * th2 * h0**2) / th1 + 1 + th2 * h0 * (h0 - 1) / th1**2) ** (1 / h0)
        )
    return PcaModel(sensors, mean, scale, v[:, :k], w[:k], t2_limit, q_limit, n)


class PcaDetector:
    """``MSPC`` alarms for units with a model; rows are already aligned per unit."""

    name = "mspc"
    conditions = ("MSPC",)

    def __init__(
        self,
        models: list[PcaModel],
        limit_factor: float = 1.0,
        smoothing: float = 1.0,
        on_delay_s: float = 0.0,
        off_delay_s: float = 0.0,
        reset_fraction: float = 0.8,
    ) -> None:
        self.models = models
        self.factor = limit_factor
        self.alpha = smoothing  # EWMA prefilter per reading; 1 = none
        self.reset_fraction = reset_fraction
        self.decision = Decision(len(models), on_delay_s, off_delay_s)
        self.smoothed: list[np.ndarray | None] = [None] * len(models)

    def process_rows(self, unit: np.ndarray, t: np.ndarray, x: np.ndarray) -> Transitions:
        """Rows of aligned sensor values (sorted by unit, then time) -> transitions."""
        if len(unit) == 0:
            return Transitions(*(np.array([], d) for d in "iibiffi"))
        starts, ends = group_starts(unit), group_ends(unit)
        score = np.full(len(unit), np.nan)
        for u in np.unique(unit):  # one model per unit: a loop over units, not readings
            rows = np.flatnonzero(unit == u)
            xs = x[rows]
            if self.alpha < 1.0:
                prev = self.smoothed[u]
                init = xs[0] if prev is None else prev
                xs = np.column_stack(
                    [
                        ewma(xs[:, j], starts[rows], self.alpha, np.full(len(rows), init[j]))
                        for j in range(xs.shape[1])
                    ]
                )
                self.smoothed[u] = xs[-1]
            m = self.models[u]
            t2, q = m.score(xs)
            score[rows] = np.maximum(t2 / (m.t2_limit * self.factor), q / (m.q_limit * self.factor))
        ok = ~np.isnan(score)
        idx, rises, activated = self.decision.decide(
            unit[ok], t[ok], score[ok] >= 1.0, score[ok] < self.reset_fraction
        )
        r = np.flatnonzero(ok)[idx]
        _ = ends
        return Transitions(
            unit[r],
            np.zeros(len(r), np.int64),
            rises,
            t[r],
            score[r],
            np.ones(len(r)),
            activated,
        )


# Online defaults, the configuration measured on SKAB (docs/detectors.md).
ONLINE = {"limit_factor": 2.0, "smoothing": 0.2, "on_delay_s": 5.0, "off_delay_s": 30.0}


class UnitMspc:
    """PCA T²/Q per unit on live readings: rows aligned by holding each sensor's last value.

    Every usable reading of a modelled sensor yields one row: the unit's sensors with their
    latest values (sample-and-hold, per column a forward fill over the unit's rows). Rows
    before every sensor has reported once are skipped.
    """

    name = "mspc"
    conditions = ("MSPC",)

    def __init__(
        self,
        index_of: dict[str, int],
        n_sensors: int,
        models: dict[str, tuple[int, PcaModel]],
    ) -> None:
        self.units = sorted(models)
        self.versions = [models[u][0] for u in self.units]
        pca = [models[u][1] for u in self.units]
        self.det = PcaDetector(
            pca,
            ONLINE["limit_factor"],
            ONLINE["smoothing"],
            ONLINE["on_delay_s"],
            ONLINE["off_delay_s"],
        )
        self.model_of = np.full(n_sensors, -1, np.int64)
        self.col_of = np.full(n_sensors, -1, np.int64)
        for m, model in enumerate(pca):
            for j, sid in enumerate(model.sensors):
                i = index_of.get(sid)
                if i is not None:
                    self.model_of[i], self.col_of[i] = m, j
        self.last = [np.full(len(model.sensors), np.nan) for model in pca]

    def process(
        self, s: np.ndarray, t: np.ndarray, v: np.ndarray, usable: np.ndarray
    ) -> Transitions:
        """Score the modelled readings of a sorted batch; ``sensor`` of the result = model."""
        rows = np.flatnonzero(usable & (self.model_of[s] >= 0))
        if len(self.units) == 0 or len(rows) == 0:
            return Transitions(*(np.array([], d) for d in "iibiffi"))
        m, col = self.model_of[s[rows]], self.col_of[s[rows]]
        order = np.lexsort((t[rows], m))
        rows, m, col = rows[order], m[order], col[order]
        tt, vv = t[rows], v[rows]
        starts = group_starts(m)
        keep = np.zeros(len(rows), bool)
        parts = []
        for u in np.unique(m):  # one loop per unit and per sensor column, not per reading
            g = np.flatnonzero(m == u)
            p = len(self.last[u])
            xu = np.empty((len(g), p))
            for j in range(p):
                mine = col[g] == j
                init = np.full(len(g), self.last[u][j])
                xu[:, j] = ffill(mine, vv[g], starts[g], init)
            self.last[u] = xu[-1].copy()
            parts.append(xu)
            keep[g] = ~np.isnan(xu).any(axis=1)
        x = np.vstack(parts)
        return self.det.process_rows(m[keep], tt[keep], x[keep])

    def snapshot(self, unit: str) -> dict[str, Any] | None:
        """State of one unit (None when it has no model)."""
        if unit not in self.units:
            return None
        u = self.units.index(unit)
        sm = self.det.smoothed[u]
        return {
            "version": self.versions[u],
            "last": [None if np.isnan(x) else float(x) for x in self.last[u]],
            "smoothed": None if sm is None else [float(x) for x in sm],
            **{k: int(a[u]) for k, a in self.det.decision.state().items()},
        }

    def restore(self, unit: str, snap: dict[str, Any]) -> None:
        """Load :meth:`snapshot` output if it belongs to the same model version."""
        if unit not in self.units:
            return
        u = self.units.index(unit)
        if snap.get("version") != self.versions[u]:
            return  # a retrained model starts afresh
        self.last[u] = np.array([np.nan if x is None else x for x in snap["last"]], float)
        if snap.get("smoothed") is not None:
            self.det.smoothed[u] = np.array(snap["smoothed"], float)
        for k, a in self.det.decision.state().items():
            a[u] = snap[k]
