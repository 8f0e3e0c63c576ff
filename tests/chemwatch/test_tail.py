"""``chemwatch tail``: every record kind decodes into readable lines (and JSON)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from chemwatch.cli import build_parser
from chemwatch.tail import format_record
from common.conditions import ConditionEvent
from common.deadletter import DeadLetter
from common.kafka import make_producer
from common.readings import ReadingBatch, encode_batch
from common.settings import BaseProcessSettings
from tests.fixtures.services import ROOT, Isolation

TS = 1_795_921_200_123_000_000


def record(value: bytes) -> Any:
    return SimpleNamespace(value=value, offset=7, partition=1)


def test_readings_one_line_per_reading_with_stale_marked() -> None:
    batch = ReadingBatch.from_columns(
        "TK101",
        ["TK101-PT-01", "TK101-TT-01"],
        np.array([TS, TS]),
        np.array([TS + 5_000_000, TS + 5_000_000]),
        np.array([7.25, np.nan]),
        np.array([0, 2]),
    )
    lines = list(format_record("readings", record(encode_batch(batch)), as_json=False))
    assert len(lines) == 2
    assert "TK101-PT-01" in lines[0]
    assert "7.25" in lines[0]
    assert "+5 ms" in lines[0]
    assert "stale/NaN" in lines[1]
    assert "bad" in lines[1]
    docs = [
        json.loads(x) for x in format_record("readings", record(encode_batch(batch)), as_json=True)
    ]
    assert docs[0]["value"] == 7.25
    assert docs[1]["value"] is None
    assert docs[0]["ts"] == "2026-11-29T03:00:00.123000+00:00"


def test_dead_letter_line() -> None:
    letter = DeadLetter("a/b/c", "not_json", "payload is not JSON", b"{oops", datetime.now(UTC), 3)
    (line,) = format_record("dlq", record(letter.to_json()), as_json=False)
    assert "not_json" in line
    assert "a/b/c[3]" in line
    assert "{oops" in line


def test_condition_line() -> None:
    now = datetime.now(UTC)
    event = ConditionEvent(
        "e1",
        "o1",
        "active",
        "s",
        "TK101",
        ("TK101-PT-01",),
        "HH",
        "high",
        16.0,
        15.5,
        "limits",
        now,
        now,
        "above HH",
    )
    (line,) = format_record("conditions", record(event.to_json()), as_json=False)
    assert "active" in line
    assert "TK101-PT-01" in line
    assert "above HH" in line


def test_garbage_is_reported_not_raised() -> None:
    (line,) = format_record("readings", record(b"garbage"), as_json=False)
    assert line.startswith("# offset 7 partition 1: undecodable")


def test_registered_in_the_cli() -> None:
    args = build_parser().parse_args(["tail", "dlq", "-n", "5", "--from-beginning"])
    assert (args.kind, args.max, args.from_beginning) == ("dlq", 5, True)


@pytest.mark.integration
def test_tail_reads_a_real_topic(stack: BaseProcessSettings, isolation: Isolation) -> None:
    batch = ReadingBatch.from_columns(
        "TK101", ["TK101-PT-01"], np.array([TS]), np.array([TS]), np.array([7.5]), np.array([0])
    )

    async def produce() -> None:
        producer = make_producer(stack.kafka)
        await producer.start()
        try:
            await producer.send_and_wait(isolation.readings_topic, encode_batch(batch), b"TK101")
        finally:
            await producer.stop()

    asyncio.run(produce())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chemwatch",
            "tail",
            "readings",
            "--topic",
            isolation.readings_topic,
            "--from-beginning",
            "-n",
            "1",
            "--idle-s",
            "30",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert json.loads(line) | {"ingest_delay_ms": 0} == {
        "unit": "TK101",
        "sensor": "TK101-PT-01",
        "ts": "2026-11-29T03:00:00.123000+00:00",
        "value": 7.5,
        "quality": "good",
        "ingest_delay_ms": 0,
    }
