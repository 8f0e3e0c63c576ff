"""Concurrent writers on the real PostgreSQL: an operator action racing the event consumer."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from alerting import actions, changes, store
from alerting.context import build_context
from alerting.settings import AlertingSettings
from common.settings import BaseProcessSettings
from tests.alerting.helpers import at, pair
from tests.fixtures.services import ROOT, Isolation, database

pytestmark = pytest.mark.integration


def _waiting_on_lock(db: psycopg.Connection, pid: int) -> bool:
    row = db.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
    found = row.fetchone()
    return found is not None and found[0] == "Lock"


def test_ack_during_a_consumer_chunk_does_not_deadlock(
    db: psycopg.Connection, stack: BaseProcessSettings, isolation: Isolation
) -> None:
    """The consumer holds the change-log lock for its chunk while an operator acks an
    alarm the chunk touches next. The ack must wait for the lock before locking the
    alarm row; locking the row first made a lock cycle (DeadlockDetected)."""
    ctx = build_context(
        AlertingSettings(
            plant=ROOT / "examples" / "plant.yaml",
            alerting={"rules": ROOT / "examples" / "rules.yaml"},
        )
    )
    first, second = pair("TK101-PT-01", "HH", 0)[0], pair("TK101-LT-01", "H", 0, 20)
    store.apply_event(db, second[0], ctx)  # the alarm the operator acknowledges
    acked_aid = "TK101-LT-01:H"
    conninfo = database(stack, isolation).conninfo()
    errors: list[BaseException] = []

    with psycopg.connect(conninfo, autocommit=True) as consumer_conn:
        operator_conn = psycopg.connect(conninfo, autocommit=True)
        operator_pid = operator_conn.info.backend_pid

        def operator() -> None:
            try:
                actions.acknowledge(operator_conn, acked_aid, "olga", "seen", at(5))
            except BaseException as exc:  # reported to the test thread below
                errors.append(exc)

        with changes.transaction(consumer_conn):  # the consumer's chunk
            store.apply_event(consumer_conn, first, ctx)
            thread = threading.Thread(target=operator)
            thread.start()
            deadline = time.monotonic() + 10
            while not _waiting_on_lock(db, operator_pid):
                assert time.monotonic() < deadline, "the acknowledgement never blocked"
                time.sleep(0.02)
            # The next event of the chunk touches the acknowledged alarm.
            store.apply_event(consumer_conn, second[1], ctx)
        thread.join(timeout=15)
        operator_conn.close()

    assert not errors, errors
    row = store.get_alarm(db, acked_aid)
    assert row is not None
    assert row["acked_by"] == "olga"
    assert sorted(j["action"] for j in store.journal(db, acked_aid)) == [
        "acknowledge",
        "active",
        "cleared",
    ]
