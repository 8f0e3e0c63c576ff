"""``chemwatch bench detectors`` runs end to end (a tiny run: it checks the command and
its accounting, it does not time anything)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fixtures.services import ROOT


def test_bench_detectors_json_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "bench.png"
    cmd = [sys.executable, "-m", "chemwatch", "bench", "detectors", "--sensors", "40"]
    cmd += ["--readings", "2000", "--batches", "4", "--reference-readings", "250", "--repeat", "1"]
    cmd += ["--no-river", "--json", "--plot", str(png)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert r["readings"] == 2000
    assert len(r["cpus"]) == 1  # pinned to one core
    suite = r["suite"]
    stages = {"sort", "limits", "rate", "drift", "health", "exposure", "clock"}
    assert set(suite["cpu_us_per_reading"]) == stages
    assert suite["transitions"] > 0
    assert 0 < suite["state_bytes_per_sensor"]["total"] <= 2048
    ref = r["reference"]
    assert (ref["sensors"], ref["readings"]) == (5, 250)  # 50 readings per sensor
    assert ref["cpu_speedup"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "suite:" in done.stderr  # progress goes to stderr, the JSON alone to stdout
