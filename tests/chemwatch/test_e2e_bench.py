"""``chemwatch bench e2e`` end to end: one low step on the real stack, every output sane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from chemwatch.e2e import report, runner
from common.settings import BaseProcessSettings

pytestmark = [pytest.mark.integration, pytest.mark.solo]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_one_low_step_fills_the_report(stack: BaseProcessSettings, tmp_path: Path) -> None:
    opts = runner.Options(
        mode="batch", rates=(1000.0,), step_seconds=4, drain_seconds=30, sensors=(200,),
        probes=5, probe_rate=10, half_rate=False, out=tmp_path,
    )  # fmt: skip
    summary = runner.run(opts, stack)
    summary["command"] = "test"
    paths = report.write_all(summary, tmp_path)

    step = json.loads(paths["json"].read_text())["stepped"]["steps"][0]
    # every reading the generator's ledger lists is in the database, per sensor
    assert step["published"] == 4000
    assert step["stored"] == step["published"]
    assert step["mismatched_sensors"] == step["sensors_lost"] == 0
    assert step["drain_s"] is not None
    assert step["e2e_readings_per_s"] > 0
    # probes went through all three observation points, later than they were published
    for where in ("db", "condition", "alarm"):
        lat = step["latency_ms"][where]
        assert lat["n"] > 0, where
        assert 0 < lat["p50"] <= lat["p99"] < 60_000, (where, lat)
    assert step["probes"]["seen_alarm"] == step["probes"]["probe_activations"] > 0
    # the readings reader found the probe unit's partition: the bridge's stage is timed
    assert step["stages_ms"]["bridge batching -> produce"]["n"] > 0
    assert step["usage"]["detectors-0"]["peak_rss_mb"] > 10
    assert step["usage"]["ingest-0"]["cpu_cores"] > 0
    assert "| step | 1,000 |" in paths["report"].read_text()
    assert paths["rate_latency"].read_bytes()[:4] == b"\x89PNG"
    assert paths["lag"].stat().st_size > 0
    # private names are gone again
    assert summary["stepped"]["errors"] == {"alerting": 0, "detectors-0": 0, "ingest-0": 0}


@pytest.mark.timeout(240)
def test_worker_kill_step_stores_every_reading_once(
    stack: BaseProcessSettings, tmp_path: Path
) -> None:
    opts = runner.Options(
        mode="batch", rates=(1000.0,), step_seconds=9, drain_seconds=30, sensors=(200,),
        probes=5, probe_rate=10, half_rate=False, kill_worker=True, out=tmp_path,
    )  # fmt: skip
    wk = runner.worker_kill(opts, stack, 1000.0)
    step = wk["step"]
    assert step["kind"] == "worker-kill"
    # the worker was killed about a third of the way in and came back
    assert 2.0 <= wk["killed_after_s"] <= 6.0, wk["killed_after_s"]
    assert wk["down_s"] >= runner.KILL_DOWN_S
    log = (tmp_path / "logs" / "kill-200" / "detectors-0.log").read_text()
    assert log.count("resumed from stored offsets") >= 2, log[-3000:]
    # every reading stored exactly once (count, timestamp sum and value sum per sensor)
    assert step["published"] == 9000
    assert step["stored"] == step["published"]
    assert step["mismatched_sensors"] == step["sensors_lost"] == 0
    # every probe activation still raised its alarm, and the workers caught up again
    assert step["probes"]["seen_alarm"] == step["probes"]["probe_activations"] > 0
    assert wk["caught_up_s"] is not None
    assert wk["errors"] == {"alerting": 0, "detectors-0": 0, "ingest-0": 0}
    # the report and its plot
    summary = {"options": runner._jsonable(opts), "started": 0.0, "command": "test",
               "stepped": {"steps": [step], "half_rate_step": None, "sensors": 200,
                           "sustained_readings_per_s": 0, "best_observed_readings_per_s": 0,
                           "errors": {}, "state_bytes": 0, "lag": [], "rss_mb": []},
               "worker_kill": wk}  # fmt: skip
    paths = report.write_all(summary, tmp_path)
    assert "## Detector worker killed under load" in paths["report"].read_text()
    assert paths["worker_kill"].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.timeout(240)
def test_sigterm_stops_the_services_it_started(stack: BaseProcessSettings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
    env |= {"CHEMWATCH_MQTT__PORT": str(stack.mqtt.port),
            "CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "CHEMWATCH_DATABASE__PORT": str(stack.database.port)}  # fmt: skip
    log = tmp_path / "bench.log"
    with log.open("w") as out:
        bench = subprocess.Popen(
            [sys.executable, "-m", "chemwatch", "bench", "e2e", "--rates", "500",
             "--step-seconds", "60", "--sensors", "100", "--no-half-rate",
             "--out", str(tmp_path / "report")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 150
        while "step at" not in log.read_text():  # services up, the first step running
            assert bench.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        services = [
            c for c in psutil.Process(bench.pid).children(recursive=True)
            if c.cmdline()[1:3] in (["-m", "ingest"], ["-m", "detectors"], ["-m", "alerting"])
        ]  # fmt: skip
        assert len(services) == 3
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(90) == 130
        _gone, alive = psutil.wait_procs(services, timeout=10)
        assert alive == []
    finally:
        if bench.poll() is None:
            bench.kill()
