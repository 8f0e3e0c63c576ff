"""``chemwatch bench ingest``: drive real Mosquitto + Kafka through real bridge processes.

Two scenarios: ``single`` (one reading per MQTT message) and ``batch`` (gateway batches
of 100 readings). Publishers are separate processes (QoS 1, waiting for every PUBACK);
bridges are ``python -m ingest`` processes on one shared subscription. Everything uses
private names (MQTT prefix, Kafka topics, share group, a generated plant), and the
topics are deleted afterwards.

Delivery is verified on the Kafka side: a consumer decodes every readings record and
counts distinct readings (each carries a unique sequence number as its value), so the
figures are readings that *arrived*, with loss and duplicates reported. Latency is
publish time (the reading's ``ts``, ms) to the broker's append time of the record
(the bench topics use ``LogAppendTime``; acks=all on one broker appends = acks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cramjam
import numpy as np
import psutil

from chemwatch.bench_load import (
    BATCH,
    clear_session,
    create_topics,
    delete_topics,
    publisher,
    write_plant,
)
from common import kafka as kafka_clients
from common.cli import add_common_arguments
from common.process import guarded, settings_from_args
from common.readings import decode_batch
from common.settings import BaseProcessSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``chemwatch bench ingest``."""
    add_common_arguments(parser)
    parser.add_argument(
        "--scenario", choices=["single", "batch", "both"], default="both", help="what to publish"
    )
    parser.add_argument("--messages", type=int, default=60_000, help="MQTT messages (single)")
    parser.add_argument("--batches", type=int, default=2_000, help="MQTT messages (batch)")
    parser.add_argument("--bridges", type=int, default=1, help="bridge processes")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument(
        "--rate", type=float, default=0, help="MQTT messages/s in total (0: as fast as possible)"
    )
    parser.add_argument("--compression", default="lz4", help="none, gzip, snappy, lz4, zstd")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="bridge setting, e.g. --set ingest.linger_ms=50 (repeatable)",
    )
    parser.add_argument("--profile", type=Path, help="run bridge 0 under pyinstrument, text here")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.set_defaults(func=run)


@dataclass
class Result:
    scenario: str
    compression: str
    bridges: int
    publishers: int
    mqtt_messages: int
    readings_published: int
    readings_delivered: int
    lost: int
    duplicates: int
    publish_s: float
    total_s: float
    readings_per_s: float
    mqtt_msgs_per_s: float
    publish_msgs_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    kafka_bytes_per_reading: float
    cpu_percent: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    decode_us_per_reading: float = 0.0
    # the same records compressed one by one (Kafka compresses whole producer batches,
    # so on disk it is at least this good)
    lz4_bytes_per_reading: float = 0.0
    zstd_bytes_per_reading: float = 0.0


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        scenarios = ["single", "batch"] if args.scenario == "both" else [args.scenario]
        results = []
        for scenario in scenarios:
            _progress(f"{scenario}: starting ...", args.json)
            results.append(asyncio.run(_scenario(settings, scenario, args)))
        if args.json:
            print(json.dumps({"results": [asdict(r) for r in results]}, indent=1))
        else:
            _table(results)
        return 0

    return guarded(main)


def _progress(text: str, quiet: bool) -> None:
    """Progress goes to stderr, so stdout stays one table or one JSON object."""
    del quiet
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- one scenario


async def _scenario(
    settings: BaseProcessSettings, scenario: str, args: argparse.Namespace
) -> Result:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    readings_topic, dlq_topic = f"{tag}.readings", f"{tag}.readings.dlq"
    prefix = f"bench/{tag}"
    messages = args.messages if scenario == "single" else args.batches
    per_msg = 1 if scenario == "single" else BATCH
    expected = messages * per_msg
    await create_topics(settings, readings_topic, dlq_topic)
    tmp = Path(tempfile.mkdtemp(prefix="chemwatch-bench-"))
    write_plant(tmp / "plant.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")} | {
        "CHEMWATCH_PLANT": str(tmp / "plant.yaml"),
        "CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "CHEMWATCH_MQTT__HOST": settings.mqtt.host,
        "CHEMWATCH_MQTT__PORT": str(settings.mqtt.port),
        "CHEMWATCH_KAFKA__READINGS_TOPIC": readings_topic,
        "CHEMWATCH_KAFKA__DLQ_TOPIC": dlq_topic,
        "CHEMWATCH_MQTT__TOPIC_PREFIX": prefix,
        "CHEMWATCH_INGEST__SHARE_GROUP": tag,
        "CHEMWATCH_INGEST__COMPRESSION": args.compression,
        "CHEMWATCH_INGEST__MAX_FUTURE_SKEW_S": "300",
        "CHEMWATCH_HTTP__PORT": "0",
        "CHEMWATCH_LOG_LEVEL": "WARNING",
    }
    for item in args.set:
        key, _, value = item.partition("=")
        env["CHEMWATCH_" + key.upper().replace(".", "__")] = value
    bridges: list[tuple[subprocess.Popen[bytes], Path, str]] = []
    try:
        for i in range(args.bridges):
            client_id = f"{tag}-bridge{i}"
            log_path = tmp / f"bridge{i}.log"
            cmd = [sys.executable, "-m", "ingest"]
            if args.profile and i == 0:
                cmd = [
                    sys.executable,
                    "-m",
                    "pyinstrument",
                    "-r",
                    "text",
                    "-o",
                    str(args.profile),
                    "-m",
                    "ingest",
                ]
            with log_path.open("wb") as log:
                proc = subprocess.Popen(  # noqa: ASYNC220 - starting, not waiting
                    cmd,
                    env=env
                    | {"CHEMWATCH_INGEST__CLIENT_ID": client_id, "CHEMWATCH_LOG_LEVEL": "INFO"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            bridges.append((proc, log_path, client_id))
        deadline = time.monotonic() + 60
        for proc, log_path, _ in bridges:
            while "subscription confirmed" not in log_path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bridge did not start:\n{log_path.read_text()}")
                await asyncio.sleep(0.2)
        return await _drive(
            settings, scenario, args, readings_topic, prefix, messages, per_msg, expected, bridges
        )
    finally:
        for proc, _, client_id in bridges:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            clear_session(settings, client_id)
        with contextlib.suppress(Exception):
            await delete_topics(settings, readings_topic, dlq_topic)


def _infra_processes() -> dict[str, psutil.Process]:
    """The broker and Kafka processes (read-only: for CPU figures)."""
    found: dict[str, psutil.Process] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "mosquitto" and "mosquitto" not in found:
            found["mosquitto"] = proc
        elif "kafka.Kafka" in cmd and "kafka" not in found:
            found["kafka"] = proc
    return found


async def _drive(
    settings: BaseProcessSettings,
    scenario: str,
    args: argparse.Namespace,
    readings_topic: str,
    prefix: str,
    messages: int,
    per_msg: int,
    expected: int,
    bridges: list[tuple[subprocess.Popen[bytes], Path, str]],
) -> Result:
    procs = {f"bridge{i}": psutil.Process(p.pid) for i, (p, _, _) in enumerate(bridges)}
    procs |= _infra_processes()
    cpu0 = {n: sum(p.cpu_times()[:2]) for n, p in procs.items()}
    peak = {n: 0 for n in procs if n.startswith("bridge")}
    consumer = kafka_clients.make_consumer(
        settings.kafka,
        f"{readings_topic}-counter",
        readings_topic,
        isolation_level="read_uncommitted",
    )
    await consumer.start()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    share = messages // args.publishers
    pubs = []
    t0 = time.time()
    for i in range(args.publishers):
        count = share if i < args.publishers - 1 else messages - share * (args.publishers - 1)
        p = ctx.Process(
            target=publisher,
            args=(
                settings.mqtt.host,
                settings.mqtt.port,
                prefix,
                scenario,
                i * share,
                count,
                args.rate / args.publishers,
                queue,
            ),
        )
        p.start()
        pubs.append(p)
    values: list[np.ndarray] = []
    latency: list[np.ndarray] = []
    decode_s = 0.0
    total_bytes = 0
    samples: list[tuple[bytes, int]] = []
    delivered = 0
    last_data = time.monotonic()
    last_print = 0.0
    t_last = t0
    while delivered < expected and time.monotonic() - last_data < 20:
        batch = await consumer.getmany(timeout_ms=200, max_records=2000)
        for records in batch.values():
            for r in records:
                start = time.perf_counter()
                b = decode_batch(r.value)
                decode_s += time.perf_counter() - start
                total_bytes += len(r.value)
                if len(samples) < 300:
                    samples.append((r.value, len(b)))
                values.append(b.value)
                latency.append(r.timestamp - b.ts_ns / 1e6)
                delivered += len(b)
                t_last = r.timestamp / 1000
                last_data = time.monotonic()
        for name, p in procs.items():
            if name in peak:
                with contextlib.suppress(psutil.Error):
                    peak[name] = max(peak[name], p.memory_info().rss)
        if time.monotonic() - last_print > 1:
            last_print = time.monotonic()
            _progress(f"{scenario}: {delivered:,}/{expected:,} readings in Kafka", args.json)
    pub_stats = [queue.get(timeout=120) for _ in pubs]
    for p in pubs:
        p.join()
    await consumer.stop()
    wall = time.time() - t0
    cpu = {}
    for name, p in procs.items():
        with contextlib.suppress(psutil.Error):
            cpu[name] = round(100 * (sum(p.cpu_times()[:2]) - cpu0[name]) / wall, 1)
    cpu["publishers"] = round(100 * sum(s[2] for s in pub_stats) / wall, 1)
    all_values = np.concatenate(values) if values else np.empty(0)
    unique = len(np.unique(all_values))
    lat = np.concatenate(latency) if latency else np.zeros(1)
    pub_start = min(s[0] for s in pub_stats)
    pub_end = max(s[1] for s in pub_stats)
    span = max(t_last - pub_start, 1e-9)
    return Result(
        scenario=scenario,
        compression=args.compression,
        bridges=args.bridges,
        publishers=args.publishers,
        mqtt_messages=messages,
        readings_published=expected,
        readings_delivered=unique,
        lost=expected - unique,
        duplicates=len(all_values) - unique,
        publish_s=round(pub_end - pub_start, 2),
        total_s=round(span, 2),
        readings_per_s=round(unique / span),
        mqtt_msgs_per_s=round(unique / per_msg / span),
        publish_msgs_per_s=round(messages / max(pub_end - pub_start, 1e-9)),
        latency_p50_ms=round(float(np.percentile(lat, 50)), 1),
        latency_p99_ms=round(float(np.percentile(lat, 99)), 1),
        kafka_bytes_per_reading=round(total_bytes / max(len(all_values), 1), 1),
        cpu_percent=cpu,
        peak_rss_mb={n: round(v / 2**20, 1) for n, v in peak.items()},
        decode_us_per_reading=round(decode_s / max(len(all_values), 1) * 1e6, 3),
        lz4_bytes_per_reading=_compressed(samples, cramjam.lz4.compress),
        zstd_bytes_per_reading=_compressed(samples, cramjam.zstd.compress),
    )


def _compressed(samples: list[tuple[bytes, int]], compress: Any) -> float:
    readings = sum(n for _v, n in samples)
    size = sum(len(bytes(compress(v))) for v, _n in samples)
    return round(size / max(readings, 1), 1)


def _table(results: list[Result]) -> None:
    rows = [
        ("scenario", lambda r: r.scenario),
        ("bridges / publishers", lambda r: f"{r.bridges} / {r.publishers}"),
        ("compression", lambda r: r.compression),
        ("MQTT messages", lambda r: f"{r.mqtt_messages:,}"),
        ("readings published", lambda r: f"{r.readings_published:,}"),
        ("readings in Kafka", lambda r: f"{r.readings_delivered:,}"),
        ("lost / duplicates", lambda r: f"{r.lost} / {r.duplicates}"),
        ("readings/s delivered", lambda r: f"{r.readings_per_s:,}"),
        ("MQTT msgs/s delivered", lambda r: f"{r.mqtt_msgs_per_s:,}"),
        ("MQTT msgs/s published", lambda r: f"{r.publish_msgs_per_s:,}"),
        ("latency p50 / p99 ms", lambda r: f"{r.latency_p50_ms} / {r.latency_p99_ms}"),
        (
            "bytes/reading raw/lz4/zstd",
            lambda r: (
                f"{r.kafka_bytes_per_reading} / {r.lz4_bytes_per_reading} / "
                f"{r.zstd_bytes_per_reading}"
            ),
        ),
        ("decode us/reading", lambda r: f"{r.decode_us_per_reading}"),
        ("CPU % (of one core)", lambda r: ", ".join(f"{k} {v}" for k, v in r.cpu_percent.items())),
        ("peak RSS MB", lambda r: ", ".join(f"{k} {v}" for k, v in r.peak_rss_mb.items())),
    ]
    width = max(len(name) for name, _ in rows)
    for name, get in rows:
        print(f"{name:<{width}}  " + "  |  ".join(str(get(r)) for r in results))
    print("(shared, contended machine: Mosquitto and Kafka also serve other work)")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bench`` with its ``ingest`` benchmark."""
    bench = sub.add_parser(
        "bench",
        help="benchmarks against the real services",
        description="Benchmarks: commands that print a table (or --json), never timed tests.",
    )
    areas = bench.add_subparsers(dest="bench_area", required=True, metavar="AREA")
    add_arguments(
        areas.add_parser(
            "ingest", help="MQTT -> bridge -> Kafka throughput and latency", description=__doc__
        )
    )
