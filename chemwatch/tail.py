"""``chemwatch tail readings|dlq|conditions``: decode Kafka records and print them for people.

readings: one line per reading (time, unit, sensor, value, quality, ingest delay);
dlq: one line per dead letter (reason, topic, message, payload preview);
conditions: one line per condition transition. ``--json`` prints one JSON object per
line instead, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import sys
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

from aiokafka import ConsumerRecord

from common import kafka as kafka_clients
from common.cli import add_common_arguments
from common.conditions import ConditionEvent, ConditionFormatError, ns_to_datetime
from common.deadletter import DeadLetter
from common.errors import ChemWatchError
from common.process import guarded, settings_from_args
from common.readings import QUALITY_NAMES, BatchFormatError, decode_batch
from common.settings import BaseProcessSettings

_QUALITY = {int(q): name for name, q in QUALITY_NAMES.items()}
KINDS = ("readings", "dlq", "conditions")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``tail``."""
    parser = sub.add_parser(
        "tail", help="decode and print readings, dead letters or conditions", description=__doc__
    )
    parser.add_argument("kind", choices=KINDS, help="which topic to read")
    add_common_arguments(parser)
    parser.add_argument("--topic", help="Kafka topic (default: the one from the settings)")
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not the newest"
    )
    parser.add_argument(
        "-n", "--max", type=int, default=0, help="stop after this many records (0: follow)"
    )
    parser.add_argument("--idle-s", type=float, default=0, help="stop after this long without data")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        kafka = settings.kafka
        topic = (
            args.topic
            or {
                "readings": kafka.readings_topic,
                "dlq": kafka.dlq_topic,
                "conditions": kafka.conditions_topic,
            }[args.kind]
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_tail(settings, topic, args, sys.stdout))
        return 0

    return guarded(main)


async def _tail(
    settings: BaseProcessSettings, topic: str, args: argparse.Namespace, out: TextIO
) -> None:
    consumer = kafka_clients.make_consumer(
        settings.kafka,
        f"chemwatch-tail-{uuid.uuid4().hex[:8]}",  # never commits: a private, throwaway group
        topic,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        isolation_level="read_uncommitted",
    )
    await consumer.start()
    seen = 0
    idle = 0.0
    try:
        while not args.max or seen < args.max:
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for rs in batch.values() for r in rs]
            idle = 0.0 if records else idle + 0.5
            if args.idle_s and idle >= args.idle_s:
                break
            for record in records:
                for line in format_record(args.kind, record, as_json=args.json):
                    print(line, file=out, flush=True)
                seen += 1
                if args.max and seen >= args.max:
                    break
    finally:
        await consumer.stop()


def format_record(kind: str, record: ConsumerRecord[Any, Any], *, as_json: bool) -> Iterator[str]:
    """Lines for one Kafka record (a readings record gives one line per reading)."""
    try:
        if kind == "readings":
            yield from _readings(record.value, as_json)
        elif kind == "dlq":
            yield _dead_letter(record.value, as_json)
        else:
            yield _condition(record.value, as_json)
    except (BatchFormatError, ConditionFormatError, ChemWatchError, ValueError, KeyError) as exc:
        yield f"# offset {record.offset} partition {record.partition}: undecodable: {exc}"


def _readings(raw: bytes, as_json: bool) -> Iterator[str]:
    batch = decode_batch(raw)
    sensors = batch.sensors()
    for i in range(len(batch)):
        ts = ns_to_datetime(int(batch.ts_ns[i]))
        value = float(batch.value[i])
        quality = _QUALITY.get(int(batch.quality[i]), str(batch.quality[i]))
        delay_ms = (int(batch.ingest_ns[i]) - int(batch.ts_ns[i])) / 1e6
        if as_json:
            yield json.dumps(
                {
                    "unit": batch.unit_id,
                    "sensor": sensors[i],
                    "ts": ts.isoformat(),
                    "value": None if math.isnan(value) else value,
                    "quality": quality,
                    "ingest_delay_ms": delay_ms,
                }
            )
        else:
            shown = "stale/NaN" if math.isnan(value) else f"{value:.6g}"
            yield (
                f"{ts.isoformat(timespec='milliseconds')}  {batch.unit_id:<8} {sensors[i]:<14} "
                f"{shown:>12}  {quality:<9} +{delay_ms:.0f} ms"
            )


def _dead_letter(raw: bytes, as_json: bool) -> str:
    letter = DeadLetter.from_json(raw)
    if as_json:
        return json.dumps(
            {
                "reason": letter.reason,
                "topic": letter.topic,
                "message": letter.message,
                "index": letter.index,
                "received_at": letter.received_at.isoformat(),
                "payload_b64": base64.b64encode(letter.payload).decode(),
            }
        )
    preview = letter.payload[:80].decode("utf-8", "replace").replace("\n", " ")
    more = "..." if len(letter.payload) > 80 else ""
    at = f"[{letter.index}]" if letter.index is not None else ""
    return (
        f"{letter.received_at.isoformat(timespec='seconds')}  {letter.reason:<18} "
        f"{letter.topic}{at}  {letter.message}  | {preview!r}{more}"
    )


def _condition(raw: bytes, as_json: bool) -> str:
    event = ConditionEvent.from_json(raw)
    if as_json:
        return raw.decode()
    return (
        f"{event.ts.isoformat(timespec='seconds')}  {event.state:<7} {event.severity:<6} "
        f"{event.unit:<8} {','.join(event.sensors):<14} {event.condition}  {event.explanation}"
    )
