"""Stage breakdown of probe activations: from stamps to per-stage times and the report
(no services)."""

from __future__ import annotations

from typing import Any

from chemwatch.e2e import report, stats
from chemwatch.e2e.probes import STAGES, ProbeLog


def _log() -> ProbeLog:
    log = ProbeLog()
    # one activation with every stamp (epoch s), one missing its alarm commit, one clear
    stamps = {
        "ingested": 0.010, "sent_to_kafka": 0.040, "db": 0.300, "produced": 0.310,
        "condition": 0.325, "alarm_committed": 0.400, "alarm": 0.420,
    }  # fmt: skip
    for key, published in ((("P-1", 1000), 1000.0), (("P-2", 1001), 1001.0)):
        log.published[key] = published
        log.activations.add(key)
        for name, dt in stamps.items():
            if key == ("P-2", 1001) and name == "alarm_committed":
                continue
            getattr(log, name)[key] = published + dt
    log.published[("P-1", 1002)] = 1002.0  # a clear: not an activation
    return log


def test_stages_are_the_times_between_consecutive_stamps() -> None:
    stages = _log().stages_ms(999.0, 1003.0)
    assert list(stages) == [name for name, _, _ in STAGES]
    got = {name: [round(v, 3) for v in values] for name, values in stages.items()}
    assert got == {
        "mqtt -> bridge": [10.0],
        "bridge batching -> produce": [30.0],
        "kafka + worker poll/detect -> condition produced": [270.0],
        "condition produced -> alarm committed (alerting)": [90.0],
        "alarm committed -> on the SSE stream": [20.0],
        "beside: kafka + worker poll/detect/write -> reading committed": [260.0],
        "beside: condition produced -> received (bench consumer)": [15.0],
    }  # only the activation seen at every stage counts
    assert all(v == [] for v in _log().stages_ms(0.0, 999.0).values())  # outside the window


def test_the_report_shows_the_breakdown_per_step() -> None:
    stages = {k: stats.percentiles(v) for k, v in _log().stages_ms(999.0, 1003.0).items()}
    step: dict[str, Any] = {"kind": "step", "requested_rate": 500, "stages_ms": stages}
    lines = report._stages_table([step, {"kind": "step", "requested_rate": 900}])
    text = "\n".join(lines)
    assert "## Where the time goes" in text
    assert "| stage | step 500 |" in text  # the step without a breakdown has no column
    assert "| condition produced -> alarm committed (alerting) | 90 / 90 (n=1) |" in text
    assert report._stages_table([{"kind": "step", "requested_rate": 1}]) == []
