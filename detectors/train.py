"""Train a unit's multivariate (PCA T²/Q) model on a normal-operation window from the database.

Rows are aligned exactly as the online detector aligns them: each reading of one of the
unit's sensors yields a row holding every sensor's latest value; the same EWMA prefilter
is applied; rows before all sensors have reported are dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from common import store
from common.registry import Registry
from detectors.batch import ffill
from detectors.multivariate import ONLINE, PcaModel, fit_pca
from detectors.skab import smooth

MODEL_KIND = "pca"


def aligned_rows(sensor_ids: list[str], rows: list[tuple[Any, str, float]]) -> np.ndarray:
    """(time, sensor, value) rows, time-ordered -> sample-and-hold matrix (n, p)."""
    col = {sid: j for j, sid in enumerate(sensor_ids)}
    picked = [(c, v) for _t, sid, v in rows if (c := col.get(sid)) is not None]
    if not picked:
        return np.empty((0, len(sensor_ids)))
    cols = np.array([c for c, _ in picked])
    vals = np.array([v for _, v in picked], float)
    starts = np.zeros(len(cols), bool)
    starts[0] = True
    init = np.full(len(cols), np.nan)
    x = np.column_stack([ffill(cols == j, vals, starts, init) for j in range(len(sensor_ids))])
    return x[~np.isnan(x).any(axis=1)]


def train_unit(
    conn: psycopg.Connection[Any],
    registry: Registry,
    unit_id: str,
    start: datetime,
    end: datetime,
    variance: float = 0.9,
) -> tuple[int, PcaModel]:
    """Fit on [start, end) and store a new model version; return (version, model)."""
    if unit_id not in registry.units:
        raise ValueError(f"unknown unit {unit_id!r}")
    _site, unit = registry.units[unit_id]
    sensors = [s.id for s in unit.sensors]
    x = aligned_rows(sensors, store.read_unit_readings(conn, unit_id, start, end))
    if len(x) <= len(sensors) + 1:
        raise ValueError(
            f"{unit_id}: only {len(x)} aligned rows between {start} and {end}; "
            f"need more than {len(sensors) + 1}"
        )
    model = fit_pca(smooth(x, ONLINE["smoothing"]), tuple(sensors), variance)
    with conn.transaction():
        version = store.save_model(conn, unit_id, MODEL_KIND, model.to_dict(), start, end, len(x))
    return version, model
