"""A worker whose database connection is killed reconnects and stores everything once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.processes import (
    Publisher,
    ServiceFactory,
    start_subscribed_bridge,
    wait_until,
)
from tests.fixtures.services import Isolation
from tests.fixtures.services import readings_totals as totals

pytestmark = pytest.mark.integration


def client_ports(pid: int, server_port: int) -> list[int]:
    """Local TCP ports of ``pid``'s connections to ``server_port`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            local, remote, inode = cols[1], cols[2], cols[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.append(int(local.rsplit(":", 1)[1], 16))
    return ports


def publish(publisher: Publisher, iso: Isolation, start_ms: int, n: int) -> float:
    total = 0.0
    for i in range(n):
        value = round(5 + (i % 13) * 0.5, 2)
        publisher.publish(
            f"{iso.mqtt_prefix}/haibin-terminal/TK102/TK102-PT-01",
            json.dumps({"ts": start_ms + i * 100, "value": value}),
        )
        total += value
    return total


def test_killed_database_connection_is_recovered(
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    start_subscribed_bridge(service_factory)
    worker = service_factory("detectors")
    start_ms = int(time.time() * 1000) - 60_000
    first = publish(publisher, isolation, start_ms, 60)
    wait_until(lambda: totals(db)[0] == 60, 60, "round 1 stored")

    server_port = db.info.port
    ports = wait_until(lambda: client_ports(worker.proc.pid, server_port), 10, "worker's socket")
    killed = db.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE client_port = ANY(%s) AND pid <> pg_backend_pid()",
        (ports,),
    ).fetchone()[0]
    assert killed >= 1

    second = publish(publisher, isolation, start_ms + 10_000, 60)
    expected = (120, round(first + second, 6))
    wait_until(lambda: totals(db) == expected, 60, f"exactly {expected} (count, sum)")
    time.sleep(2)
    assert totals(db) == expected
    assert worker.alive()
    wait_until(lambda: "database back" in worker.log(), 30, "the worker to report recovery")
