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
from scipy import stats

from detectors.base import Transitions
from detectors.batch import ewma, group_ends, group_starts
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
    t2_limit = k * (n - 1) * (n + 1) / (n * (n - k)) * float(stats.f.ppf(alpha, k, n - k))
    rest = w[k:]
    if len(rest) == 0 or rest.sum() <= 1e-12:
        q_limit = 1e-9
    else:
        th1, th2, th3 = rest.sum(), (rest**2).sum(), (rest**3).sum()
        h0 = 1 - 2 * th1 * th3 / (3 * th2**2)
        ca = float(stats.norm.ppf(alpha))
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
