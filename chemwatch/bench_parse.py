"""``chemwatch bench parse``: the bridge's JSON parsing and Kafka record building, no brokers.

What one bridge process spends per MQTT message and per reading between paho handing
over a payload and aiokafka taking the records: ``parse_json`` (validation into the
batcher) and ``Batcher.records`` (numpy columns, Arrow IPC encode). Gateway batches take
the array fast path; single readings the entry-by-entry path. Messages are built like the
load generator's (``simulators/load.py``), for a synthetic plant of units of 100 sensors.
Each round parses ``--messages`` messages into one batcher, then builds its records; the
best round is reported (the least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from common.registry import load_registry
from ingest.batching import Batcher
from ingest.parse_json import JsonContext, parse_json
from ingest.sensors import SensorTable
from ingest.settings import IngestOptions
from simulators.load import PER_UNIT, SITE, sensor_id, synthetic_plant, unit_id
from simulators.load_payloads import BatchRenderer, SingleRenderer

PREFIX = "bench"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bench parse``."""
    p = sub.add_parser("parse", help="bridge JSON parse + record build (no brokers)",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--messages", type=int, default=2_000, help="MQTT messages per round")
    p.add_argument("--batch", type=int, default=100, help="readings per gateway batch")
    p.add_argument("--units", type=int, default=10, help="units of 100 sensors")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.set_defaults(func=_run)


def messages(units: int, batch: int, now_ms: int) -> tuple[list[tuple[str, bytes]], ...]:
    """(gateway batches, single readings) as (topic, payload), one batch per unit."""
    ids = [sensor_id(k) for k in range(units * PER_UNIT)]
    entries, singles = BatchRenderer(ids), SingleRenderer()
    k = np.arange(max(batch, PER_UNIT))
    centi = k % 10_000  # the generator's values (``value_of``)
    batches, single = [], []
    for u in range(units):
        base = u * PER_UNIT
        topic = f"{PREFIX}/{SITE}/{unit_id(base)}"
        rows = entries.entries(base + k[:batch] % PER_UNIT, now_ms - batch + k[:batch],
                               centi[:batch])  # fmt: skip
        batches.append((topic, BatchRenderer.message(rows)))
        payloads = singles.render(now_ms - k[:PER_UNIT], centi[:PER_UNIT])
        single += [(f"{topic}/{sensor_id(base + i)}", p) for i, p in enumerate(payloads)]
    return batches, single


def measure(ctx: JsonContext, msgs: list[tuple[str, bytes]], n: int) -> dict[str, float]:
    """Parse ``n`` messages (cycling through ``msgs``) and build the records once."""
    out = Batcher()
    t0 = time.perf_counter()
    for i in range(n):
        topic, payload = msgs[i % len(msgs)]
        rejections = parse_json(topic, payload, time.time_ns(), ctx, out)
        if rejections:
            raise RuntimeError(f"bench message rejected: {rejections[0]}")
    t1 = time.perf_counter()
    records = out.records()
    t2 = time.perf_counter()
    readings = out.count
    return {
        "parse_us_per_message": (t1 - t0) / n * 1e6,
        "parse_ns_per_reading": (t1 - t0) / readings * 1e9,
        "records_ns_per_reading": (t2 - t1) / readings * 1e9,
        "readings_per_s_one_core": readings / (t2 - t0),
        "records": len(records),
    }


def _run(args: argparse.Namespace) -> int:
    sensors = args.units * PER_UNIT
    with tempfile.TemporaryDirectory() as tmp:
        plant = Path(tmp) / "plant.yaml"
        plant.write_text(yaml.safe_dump(synthetic_plant(sensors, 1000.0), sort_keys=False))
        registry = load_registry(plant)
    ctx = JsonContext(SensorTable(registry), PREFIX, IngestOptions())
    batches, singles = messages(args.units, args.batch, time.time_ns() // 1_000_000)
    results: dict[str, Any] = {}
    for name, msgs, n in (
        (f"gateway batches of {args.batch}", batches, args.messages),
        ("single readings", singles, args.messages * 10),
    ):
        rounds = []
        for r in range(args.rounds):
            rounds.append(measure(ctx, msgs, n))
            print(f"{name}: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        best = max(rounds, key=lambda x: x["readings_per_s_one_core"])
        results[name] = {k: round(v, 1) for k, v in best.items()} | {"messages": n}
    if args.json:
        print(json.dumps({"sensors": sensors, "rounds": args.rounds, "results": results}))
        return 0
    columns = ("parse_us_per_message", "parse_ns_per_reading", "records_ns_per_reading",
               "readings_per_s_one_core")  # fmt: skip
    print(f"{'messages':<26} {'parse us/msg':>13} {'parse ns/rdg':>13} "
          f"{'records ns/rdg':>15} {'readings/s/core':>16}")  # fmt: skip
    for name, r in results.items():
        cells = [f"{r[c]:>{w},.{d}f}" for c, w, d in zip(columns, (13, 13, 15, 16), (1, 0, 0, 0),
                                                          strict=True)]  # fmt: skip
        print(f"{name:<26} " + " ".join(cells))
    return 0
