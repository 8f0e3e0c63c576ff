"""``chemwatch bench parse`` runs and reports per-message and per-reading figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_bench_parse_reports_both_paths() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chemwatch", "bench", "parse", "--messages", "50", "--rounds",
         "1", "--units", "2", "--json"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    assert doc["sensors"] == 200
    batches, singles = doc["results"]["gateway batches of 100"], doc["results"]["single readings"]
    assert batches["messages"] == 50
    assert singles["messages"] == 500
    # the per-message, per-reading and per-core figures are of the same measured times
    for r, per_message in ((batches, 100), (singles, 1)):
        assert r["parse_us_per_message"] > 0
        assert r["parse_ns_per_reading"] == pytest.approx(
            r["parse_us_per_message"] * 1000 / per_message, rel=0.02, abs=1
        )
        assert r["readings_per_s_one_core"] > 0
        assert r["readings_per_s_one_core"] == pytest.approx(
            1e9 / (r["parse_ns_per_reading"] + r["records_ns_per_reading"]), rel=0.02
        )
    # one record per unit: the batches of a unit were merged, not sent one per message
    assert batches["records"] == 2
    assert singles["records"] == 2
