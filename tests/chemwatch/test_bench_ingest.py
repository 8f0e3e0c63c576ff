"""``chemwatch bench ingest`` runs end to end on the real services and counts exactly
(a tiny run: this checks the command, it does not time anything)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from common.settings import BaseProcessSettings
from tests.fixtures.services import ROOT

pytestmark = pytest.mark.integration


def test_bench_ingest_json(stack: BaseProcessSettings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
    env["CHEMWATCH_STACK_HOME"] = os.environ.get("CHEMWATCH_STACK_HOME", "")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chemwatch",
            "bench",
            "ingest",
            "--messages",
            "300",
            "--batches",
            "30",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = {r["scenario"]: r for r in json.loads(done.stdout)["results"]}
    assert results["single"]["readings_published"] == 300
    assert results["batch"]["readings_published"] == 3000
    for r in results.values():
        assert r["readings_delivered"] == r["readings_published"]
        assert (r["lost"], r["duplicates"]) == (0, 0)
        assert r["latency_p99_ms"] >= r["latency_p50_ms"] > 0
        assert set(r["cpu_percent"]) >= {"bridge0", "publishers"}
    assert "readings in Kafka" in done.stderr  # progress goes to stderr
