"""What applying a condition event costs in statements, on the real PostgreSQL.

The alerting consumer's throughput is its statements per event (each a round trip that,
on a busy machine, waits for a CPU twice): these tests pin the ones that were removed.
The connection is a real one that notes each statement it sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest

from alerting import changes, consumer, noise, store
from alerting.context import build_context
from alerting.settings import AlertingSettings
from alerting.store import Context, NoiseLimits
from common.settings import BaseProcessSettings
from tests.alerting.helpers import pair
from tests.fixtures.services import ROOT, Isolation, database

pytestmark = pytest.mark.integration

LPG_SENSORS = [*(f"TK101-GD-0{i}" for i in range(1, 7)), *(f"TK102-GD-0{i}" for i in range(1, 5))]
WINDOW_QUERY = "FROM alarm_journal j JOIN alarms a"


class Recording(psycopg.Connection[Any]):
    """A psycopg connection that records the text of every statement it executes."""

    statements: list[str]

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        self.statements.append(str(query))
        return super().execute(query, params, **kwargs)


@pytest.fixture
def rec(stack: BaseProcessSettings, isolation: Isolation) -> Any:
    conn = Recording.connect(database(stack, isolation).conninfo(), autocommit=True)
    conn.statements = []
    yield conn
    conn.close()


@pytest.fixture
def ctx() -> Context:
    return build_context(
        AlertingSettings(
            plant=ROOT / "examples" / "plant.yaml",
            alerting={"rules": ROOT / "examples" / "rules.yaml"},
        )
    )


def test_an_open_flood_skips_the_window_query(rec: Recording, ctx: Context) -> None:
    # 11 new alarms in the LPG console within 10 minutes open a flood
    for k in range(11):
        sensor = LPG_SENSORS[k % len(LPG_SENSORS)]
        store.apply_event(rec, pair(sensor, "H", k * 10, k * 10 + 5, unit=sensor[:5])[0], ctx)
    (flood,) = noise.open_floods(rec)
    rec.statements.clear()
    sensor = LPG_SENSORS[0]
    for event in pair(sensor, "HH", 200, 205, unit=sensor[:5], severity="critical"):
        store.apply_event(rec, event, ctx)
    # the activation joined the open flood without reading the console's window
    assert store.get_alarm(rec, f"{sensor}:HH")["flood_id"] == flood["id"]
    assert not [s for s in rec.statements if WINDOW_QUERY in s]
    (again,) = noise.open_floods(rec)
    assert again["alarm_count"] == flood["alarm_count"] + 1


def test_a_chunk_of_events_takes_the_change_log_lock_once(rec: Recording, ctx: Context) -> None:
    rec.autocommit = False
    events = [e for k in range(3) for e in pair(f"TK201-PT-0{k + 1}", "H", k, k + 0.5, "TK201")]
    with changes.transaction(rec):  # as the consumer applies a chunk
        for event in events:
            assert store.apply_event(rec, event, ctx) is not None
    locks = [s for s in rec.statements if "pg_advisory_xact_lock" in s]
    assert len(locks) == 1  # not once more per event (savepoint) and per change (append)
    assert changes.last_id(rec) == len(events)
    rec.commit()
    # a later transaction takes it again; an append outside transaction() takes it itself
    rec.statements.clear()
    with changes.transaction(rec):
        store.apply_event(rec, pair("TK201-PT-01", "H", 60)[0], ctx)
    with rec.transaction():
        changes.append(rec, "alarm", "x", {})
    assert len([s for s in rec.statements if "pg_advisory_xact_lock" in s]) == 2


class _Record(NamedTuple):
    value: bytes
    topic: str = "conditions"
    partition: int = 0
    offset: int = 0


def test_a_chunk_has_no_savepoint_per_event(rec: Recording, ctx: Context, tmp_path: Path) -> None:
    rec.autocommit = False
    records = [
        _Record(e.to_json())
        for k in range(3)
        for e in pair(f"TK201-PT-0{k + 1}", "H", k, k + 0.5, "TK201")
    ]
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as f:
        rec.pgconn.trace(f.fileno())
        applied = consumer._apply_all(rec, records, ctx)
        rec.pgconn.untrace()
    assert len(applied) == 6
    assert "SAVEPOINT" not in trace.read_text()  # the protocol trace of everything sent
    assert changes.last_id(rec) == 6


def test_an_activation_and_its_clear_take_few_round_trips(
    rec: Recording, ctx: Context, tmp_path: Path
) -> None:
    """Round trips = ReadyForQuery messages in the protocol trace. 27 before (13-14 per
    event); now one read for the alarm with its context, the journal, chatter, flood, the
    alarm row with its change-log entry (pipelined), one incident query per scope."""
    rec.autocommit = False
    ctx.limits = NoiseLimits(chatter_activations=10**9)  # as bench e2e's probes: no shelving
    events = [e for k in range(12) for e in pair("TK101-PT-01", "H", k, k + 0.5, "TK101")]
    consumer._apply_all(rec, [_Record(e.to_json()) for e in events[:-2]], ctx)  # a flood
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as f:
        rec.pgconn.trace(f.fileno())
        applied = consumer._apply_all(rec, [_Record(e.to_json()) for e in events[-2:]], ctx)
        rec.pgconn.untrace()
    assert [c.to_state for c in applied] == ["UNACK", "RTNUN"]
    round_trips = trace.read_text().count("\tReadyForQuery\t")
    assert round_trips - 3 <= 12  # BEGIN, lock and COMMIT are the chunk's
