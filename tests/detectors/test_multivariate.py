"""PCA T²/Q: fitting, online unit alignment, snapshots, training from the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from common import store
from common.registry import load_registry
from detectors.batch import BAD_QUALITY
from detectors.multivariate import PcaModel, UnitMspc, fit_pca
from detectors.skab import smooth
from detectors.train import aligned_rows, train_unit

S = 1_000_000_000


def correlated(n: int, seed: int = 0, broken: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.sin(np.arange(n) / 20 + seed)  # slow next to the 1 s sampling, as in a plant
    x = np.column_stack([base, 2 * base, -base]) + rng.normal(0, 0.05, (n, 3))
    if broken:
        x[:, 2] = base  # same ranges, but the correlation flipped sign
    return x + np.array([10.0, 20.0, 30.0])


def test_model_round_trips_through_json_and_scores_alike() -> None:
    model = fit_pca(correlated(500), ("a", "b", "c"))
    again = PcaModel.from_dict(json.loads(json.dumps(model.to_dict())))
    x = correlated(50, seed=3)
    np.testing.assert_allclose(again.score(x)[0], model.score(x)[0])
    np.testing.assert_allclose(again.score(x)[1], model.score(x)[1])
    assert model.score(correlated(200, 5, broken=True))[1].mean() > 10 * model.q_limit


def stream(mspc: UnitMspc, x: np.ndarray, t0: int) -> list:
    """Readings of the three sensors, one per second each, in one batch."""
    n = len(x)
    s = np.tile(np.arange(3), n)
    t = t0 + np.repeat(np.arange(n), 3) * S + np.tile(np.arange(3), n)
    v = x.ravel()
    q = np.zeros(len(s), np.uint8)
    q[::97] = BAD_QUALITY  # bad readings are skipped, the held value stays
    return mspc.process(s, t, v, q != BAD_QUALITY).rows()


def test_unit_alarm_on_a_broken_correlation_and_snapshot_round_trip() -> None:
    model = fit_pca(smooth(correlated(600), 0.2), ("a", "b", "c"))  # as `train` does
    index = {"a": 0, "b": 1, "c": 2}
    mspc = UnitMspc(index, 3, {"U1": (1, model)})
    assert stream(mspc, correlated(200, seed=1), 10**18) == []  # normal: quiet
    snap = json.loads(json.dumps(mspc.snapshot("U1")))
    twin = UnitMspc(index, 3, {"U1": (1, model)})
    twin.restore("U1", snap)
    broken = correlated(100, seed=2, broken=True)
    got = stream(mspc, broken, 10**18 + 300 * S)
    assert got
    assert got[0][2]  # active
    assert stream(twin, broken, 10**18 + 300 * S) == got
    retrained = UnitMspc(index, 3, {"U1": (2, model)})
    retrained.restore("U1", snap)  # another version: the old state is not applied
    assert np.isnan(retrained.last[0]).all()


def test_aligned_rows_hold_the_last_value_of_each_sensor() -> None:
    rows = [(0, "a", 1.0), (1, "b", 2.0), (2, "x", 9.0), (3, "c", 3.0), (4, "a", 4.0)]
    x = aligned_rows(["a", "b", "c"], rows)
    assert x.tolist() == [[1.0, 2.0, 3.0], [4.0, 2.0, 3.0]]


@pytest.mark.integration
def test_train_stores_versioned_models(db: psycopg.Connection) -> None:
    registry = load_registry("examples/plant.yaml")
    _site, unit = registry.units["R501"]
    sensors = [s.id for s in unit.sensors]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = 200
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, n)
    values = np.column_stack(
        [80 + base + rng.normal(0, 0.1, n) * (j + 1) for j in range(len(sensors))]
    )
    ts = np.array([int((start + timedelta(seconds=i)).timestamp() * 1e9) for i in range(n)])
    codes = np.repeat(np.arange(len(sensors))[None, :], n, axis=0).ravel()
    with db.transaction():
        store.write_readings(
            db,
            sensors,
            codes,
            ["R501"],
            np.zeros(len(codes), np.int64),
            np.repeat(ts, len(sensors)) + np.tile(np.arange(len(sensors)), n),
            np.repeat(ts, len(sensors)),
            values.ravel(),
            np.zeros(len(codes), np.uint8),
        )
    end = start + timedelta(seconds=n)
    v1, model = train_unit(db, registry, "R501", start, end)
    v2, _ = train_unit(db, registry, "R501", start, end)
    assert (v1, v2) == (1, 2)
    assert model.sensors == tuple(sensors)
    latest = store.load_models(db, "pca")
    assert latest["R501"][0] == 2
    assert PcaModel.from_dict(latest["R501"][1]).n_train == model.n_train
    with pytest.raises(ValueError, match="aligned rows"):
        train_unit(db, registry, "R501", end, end + timedelta(seconds=5))


def test_worker_reports_mspc_with_every_sensor_of_the_unit() -> None:
    from detectors.settings import DetectorSettings
    from detectors.worker import Worker

    registry = load_registry("examples/plant.yaml")
    worker = Worker(DetectorSettings(), registry)
    sensors = ("R501-TT-01", "R501-TT-02", "R501-PT-01")
    idx = [registry.sensor(s).index for s in sensors]  # type: ignore[union-attr]
    model = fit_pca(smooth(correlated(600), 0.2), sensors)
    worker.mspc = UnitMspc(worker.index_of, len(registry), {"R501": (1, model)})
    x = np.vstack([correlated(100, seed=1), correlated(60, seed=2, broken=True)])
    n = len(x)
    cols = {
        "sensor": np.tile(np.array(idx), n),
        "ts": 10**18 + np.repeat(np.arange(n), 3) * S + np.tile(np.arange(3), n),
        "value": x.ravel(),
        "quality": np.zeros(3 * n, np.uint8),
    }
    events = [e for e in worker.detect(cols) if e.detector == "mspc"]
    assert events
    assert events[0].state == "active"
    assert events[0].sensors == sensors
    assert events[0].unit == "R501"
    assert "multivariate" in events[0].explanation
    assert "mspc" in worker._snapshots(np.array([list(worker.unit_names).index("R501")]))["R501"]
