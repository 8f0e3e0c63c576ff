"""The storage benchmarks run end to end on small sizes (a smoke test, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chemwatch import bench_storage, grafana
from tests.fixtures.services import ROOT, Isolation

pytestmark = pytest.mark.integration


def chemwatch(isolation: Isolation, *args: str) -> dict:
    env = {**isolation.env, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "chemwatch", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bench_storage_measures_every_method(isolation: Isolation, tmp_path: Path) -> None:
    chart = tmp_path / "storage.png"
    out = chemwatch(
        isolation, "bench", "storage", "--rows", "3000", "--baseline-rows", "1000",
        "--batch", "1000", "--sensors", "50", "--plot", str(chart),
    )  # fmt: skip
    assert [r["method"] for r in out["results"]] == list(bench_storage.METHODS)
    for r in out["results"]:
        assert r["rows_per_s"] > 0
        assert r["rows"] == (1000 if r["method"] == "executemany" else 3000)
    assert out["write_path_rows_per_s"][str(1000)] > 0
    assert out["flavour"] == "postgres"
    assert out["plot"] == str(chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_dashboards_runs_every_sql_query(isolation: Isolation) -> None:
    out = chemwatch(
        isolation, "bench", "dashboards", "--sensors", "30", "--days", "2",
        "--minute-days", "0.5", "--raw-hours", "0.2", "--repeat", "1",
    )  # fmt: skip
    expected = sum(
        1 for p in grafana.dashboard_files() for q in grafana.queries(p) if q.language == "sql"
    )
    assert len(out["results"]) == expected
    assert out["rows"]["readings_1h"] > 0
    assert out["rows"]["readings"] > 0
