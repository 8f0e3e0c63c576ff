"""SKAB evaluation: scoring functions, streaming (no peeking), and one real file end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from detectors import skab

SKAB = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "skab"
needs_data = pytest.mark.skipif(not (SKAB / "data").is_dir(), reason=f"no SKAB data at {SKAB}")


def test_binary_scores_follow_skab_formulas() -> None:
    y = [np.array([0, 0, 1, 1, 1, 0], bool)]
    p = [np.array([1, 0, 1, 1, 0, 0], bool)]
    # TP 2, FP 1, FN 1, TN 2: F1 = 2 / (2 + 1) ; FAR = 1/3 ; MAR = 1/3
    assert skab.binary_scores(y, p) == {"F1": 0.667, "FAR": 33.33, "MAR": 33.33}


def test_nab_perfect_null_and_late_detectors() -> None:
    t = np.arange(0, 600) * 1_000_000_000
    cp = np.zeros(600, bool)
    cp[[100, 300]] = True
    perfect = np.zeros(600, bool)
    perfect[100:300] = True  # rises at the first changepoint, falls at the second
    assert skab.nab_scores([t], [cp], [perfect])["Standard"] == 100.0
    assert skab.nab_scores([t], [cp], [np.zeros(600, bool)])["Standard"] == 0.0
    late = np.zeros(600, bool)
    late[130:330] = True  # half-way into each 60 s window: less than perfect, more than null
    score = skab.nab_scores([t], [cp], [late])["Standard"]
    assert 0 < score < 100


@needs_data
def test_streaming_never_peeks_at_the_future() -> None:
    exp = skab.read_file(SKAB / "data" / "other" / "1.csv", "other")
    cut = 650
    noisy = exp.x.copy()
    noisy[cut:] = np.random.default_rng(0).normal(0, 100, noisy[cut:].shape)
    altered = dataclasses.replace(exp, x=noisy)
    for spec in skab.SPECS:
        a, b = skab.predict(exp, spec), skab.predict(altered, spec)
        # batches of 10 rows: rows before the batch holding `cut` cannot differ
        assert np.array_equal(a[: cut - cut % 10], b[: cut - cut % 10]), spec.name
        assert not a[: skab.TRAIN_ROWS].any()


@needs_data
def test_one_file_end_to_end(tmp_path: Path) -> None:
    exp = skab.read_file(SKAB / "data" / "other" / "1.csv", "other")
    results = skab.evaluate([exp], skab.SPECS[:1])
    main = results["pca_t2q_6"]["groups"]["all"]
    assert 0 <= main["full"]["F1"] <= 1
    pred = results["pca_t2q_6"]["_preds"][0]
    assert (pred & exp.anomaly).any()  # the fault is seen
    assert "pca_t2q_6" in skab.table(results)
    written = skab.plot([exp], results, tmp_path)
    assert written[0].stat().st_size > 10_000
