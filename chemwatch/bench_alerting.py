"""``chemwatch bench alerting``: condition event -> SSE delivery latency under load.

Starts a private alerting service (own schema, topics and consumer group on the
running stack), opens the live stream, publishes condition events to Kafka at a
fixed rate and times each one from just before the producer sends it to the moment
its alarm change arrives on the SSE stream. Prints p50/p90/p99/max and throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from aiokafka import AIOKafkaProducer
from psycopg import sql

from chemwatch.bench_load import delete_topics
from common.conditions import ConditionEvent, event_id, occurrence_id
from common.migrate import migrate
from common.registry import load_registry
from common.settings import BaseProcessSettings, load_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=600, help="condition events to publish")
    p.add_argument("--rate", type=float, default=100.0, help="events per second")
    p.add_argument("--plant", type=Path, default=Path("examples/plant.yaml"))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", type=Path, help="save latency over time and its CDF as a PNG")
    p.set_defaults(func=run)


def _events(plant: Path, count: int) -> list[ConditionEvent]:
    """Activations spread over every sensor; each one a new alarm occurrence."""
    refs = list(load_registry(plant))
    start = datetime.now(UTC) - timedelta(hours=1)
    out = []
    for k in range(count):
        r = refs[k % len(refs)]
        ts = start + timedelta(milliseconds=k)
        condition = f"BENCH_{k // len(refs)}"
        occ = occurrence_id(r.unit.id, r.sensor.id, condition, int(ts.timestamp() * 1e9))
        out.append(
            ConditionEvent(
                event_id=event_id(occ, "active"),
                occurrence_id=occ,
                state="active",
                site=r.site.id,
                unit=r.unit.id,
                sensors=(r.sensor.id,),
                condition=condition,
                severity="medium",
                value=1.0,
                threshold=0.5,
                detector="bench",
                ts=ts,
                activated_at=ts,
                explanation="benchmark",
            )
        )
    return out


def _listen(
    url: str, token: str, seen: dict[str, float], ready: threading.Event, stop: threading.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            ready.set()
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("data: {") and '"occurrence_id"' in line:
                    occ = json.loads(line[6:]).get("occurrence_id")
                    seen.setdefault(occ, time.monotonic())
    except httpx.HTTPError:
        if not stop.is_set():
            raise


async def _publish(
    settings: BaseProcessSettings,
    topic: str,
    events: list[ConditionEvent],
    rate: float,
    sent: dict[str, float],
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
    )
    await producer.start()
    try:
        t0 = time.monotonic()
        for k, e in enumerate(events):
            delay = t0 + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[e.occurrence_id] = time.monotonic()
            await producer.send(topic, e.to_json(), key=e.unit.encode())
        await producer.flush()
    finally:
        await producer.stop()


def run(args: argparse.Namespace) -> int:
    settings = load_settings(BaseProcessSettings)
    tag = "bench" + uuid.uuid4().hex[:8]
    schema = f"bench_{tag}"
    database = settings.database.model_copy(update={"db_schema": schema})
    migrate(database)
    token = secrets.token_urlsafe(16)
    port = 18000 + int(uuid.uuid4().int % 1000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")} | {
        "CHEMWATCH_PLANT": str(args.plant),
        "CHEMWATCH_DATABASE__DB_SCHEMA": schema,
        "CHEMWATCH_KAFKA__CONDITIONS_TOPIC": f"{tag}.conditions",
        "CHEMWATCH_KAFKA__ALARMS_TOPIC": f"{tag}.alarms",
        "CHEMWATCH_ALERTING__GROUP_ID": f"{tag}-alerting",
        "CHEMWATCH_HTTP__PORT": str(port),
        "CHEMWATCH_ALERTING__USERS": json.dumps([{"name": "bench", "token": token}]),
        "CHEMWATCH_LOG_LEVEL": "ERROR",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "alerting"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, float] = {}
    sent: dict[str, float] = {}
    stop = threading.Event()
    try:
        _wait_healthy(base)
        ready = threading.Event()
        threading.Thread(
            target=_listen, args=(base + "/stream", token, seen, ready, stop), daemon=True
        ).start()
        ready.wait(10)
        events = _events(args.plant, args.events)
        if not args.json:
            print(f"publishing {len(events)} events at {args.rate:g}/s ...", file=sys.stderr)
        asyncio.run(_publish(settings, f"{tag}.conditions", events, args.rate, sent))
        deadline = time.monotonic() + 60
        while len(seen) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        with psycopg.connect(settings.database.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        asyncio.run(delete_topics(settings, f"{tag}.conditions", f"{tag}.alarms"))
    result = _summary(sent, seen, args)
    if args.plot:
        _plot(sent, seen, args.plot, result)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<22} {value}")
    return 0 if result["delivered"] == result["events"] else 1


def _summary(
    sent: dict[str, float], seen: dict[str, float], args: argparse.Namespace
) -> dict[str, Any]:
    lat = np.array([seen[k] - sent[k] for k in sent if k in seen]) * 1000
    span = (max(seen.values()) - min(sent.values())) if seen else float("nan")
    return {
        "events": len(sent),
        "delivered": int(lat.size),
        "rate_offered_per_s": args.rate,
        "throughput_per_s": round(lat.size / span, 1) if seen else 0,
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_p90_ms": round(float(np.percentile(lat, 90)), 1) if lat.size else None,
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "latency_max_ms": round(float(lat.max()), 1) if lat.size else None,
    }


def _plot(
    sent: dict[str, float], seen: dict[str, float], path: Path, result: dict[str, Any]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted((k for k in sent if k in seen), key=sent.__getitem__)
    t0 = min(sent.values())
    at = np.array([sent[k] - t0 for k in keys])
    lat = np.array([seen[k] - sent[k] for k in keys]) * 1000
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(at, lat, ".", markersize=3)
    left.set(
        xlabel="time since first event (s)",
        ylabel="event -> SSE latency (ms)",
        title=f"{result['rate_offered_per_s']:g} events/s offered",
    )
    right.plot(np.sort(lat), np.linspace(0, 1, lat.size))
    for q in ("p50", "p99"):
        right.axvline(result[f"latency_{q}_ms"], linestyle="--", color="grey")
    right.set(xlabel="latency (ms)", ylabel="fraction of events", title="CDF (p50, p99 dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the alerting service did not become healthy within 60 s")
