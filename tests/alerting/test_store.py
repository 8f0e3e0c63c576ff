"""The alarm lifecycle on the real PostgreSQL: every transition, journalled."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from alerting import actions, store
from alerting.context import build_context
from alerting.settings import AlertingSettings
from alerting.store import Context
from tests.alerting.helpers import at, pair
from tests.fixtures.services import ROOT

pytestmark = pytest.mark.integration

PT = "TK101-PT-01"
AID = f"{PT}:HH"


@pytest.fixture
def ctx() -> Context:
    return build_context(
        AlertingSettings(
            plant=ROOT / "examples" / "plant.yaml",
            alerting={"rules": ROOT / "examples" / "rules.yaml"},
        )
    )


def state(db: psycopg.Connection, aid: str = AID) -> str:
    row = store.get_alarm(db, aid)
    assert row is not None
    return str(row["state"])


def test_active_ack_clear(db: psycopg.Connection, ctx: Context) -> None:
    active, cleared = pair(PT, "HH", 0, 30)
    assert store.apply_event(db, active, ctx).to_state == "UNACK"
    assert actions.acknowledge(db, AID, "olga", "on it", at(5))["state"] == "ACKED"
    assert store.apply_event(db, cleared, ctx).to_state == "NORMAL"
    journal = store.journal(db, AID)
    assert [(j["action"], j["to_state"], j["username"]) for j in journal] == [
        ("active", "UNACK", "system"),
        ("acknowledge", "ACKED", "olga"),
        ("cleared", "NORMAL", "system"),
    ]
    assert journal[1]["details"]["comment"] == "on it"


def test_return_unacknowledged_then_reactivation_is_a_new_occurrence(
    db: psycopg.Connection, ctx: Context
) -> None:
    first = pair(PT, "HH", 0, 10)
    second = pair(PT, "HH", 100)
    for e in first:
        store.apply_event(db, e, ctx)
    assert state(db) == "RTNUN"
    store.apply_event(db, second[0], ctx)
    row = store.get_alarm(db, AID)
    assert row["state"] == "UNACK"
    assert row["occurrence_id"] == second[0].occurrence_id
    assert row["activations"] == 2
    occurrences = {j["occurrence_id"] for j in store.journal(db, AID)}
    assert occurrences == {first[0].occurrence_id, second[0].occurrence_id}
    own = store.journal(db, AID, first[0].occurrence_id)
    assert [j["action"] for j in own] == ["active", "cleared"]
    assert actions.acknowledge(db, AID, "olga", "", at(101))["state"] == "ACKED"
    with pytest.raises(actions.ActionError) as err:
        actions.acknowledge(db, AID, "olga", "", at(102))
    assert err.value.status == 409


def test_replay_changes_nothing(db: psycopg.Connection, ctx: Context) -> None:
    active, _ = pair(PT, "HH", 0, 10)
    assert store.apply_event(db, active, ctx) is not None
    assert store.apply_event(db, active, ctx) is None
    assert len(store.journal(db, AID)) == 1


def test_out_of_order_events(db: psycopg.Connection, ctx: Context) -> None:
    old = pair(PT, "HH", 0, 10)
    new = pair(PT, "HH", 50)
    store.apply_event(db, new[0], ctx)
    # the older occurrence arrives late: journalled only
    assert store.apply_event(db, old[0], ctx) is None
    assert store.apply_event(db, old[1], ctx) is None
    assert state(db) == "UNACK"
    assert store.get_alarm(db, AID)["occurrence_id"] == new[0].occurrence_id
    # a clear that overtakes its activation: the alarm comes in as returned-unacknowledged
    later = pair(PT, "HH", 200, 210)
    assert store.apply_event(db, later[1], ctx) is None
    change = store.apply_event(db, later[0], ctx)
    assert change is not None
    assert change.to_state == "RTNUN"
    assert store.get_alarm(db, AID)["active"] is False
    # the journal (ordered by event time) keeps every event, applied or not
    assert [j["action"] for j in store.journal(db, AID)] == [
        "stale_active",
        "stale_cleared",
        "active",
        "active",
        "early_cleared",
    ]


def test_shelve_expires_and_reevaluates(db: psycopg.Connection, ctx: Context) -> None:
    store.apply_event(db, pair(PT, "H", 0)[0], ctx)
    aid = f"{PT}:H"
    assert actions.acknowledge(db, aid, "olga", "", at(1))["state"] == "ACKED"
    row = actions.shelve(db, aid, "olga", "sensor being checked", 600, at(2), True)
    assert row["state"] == "SHELVED"
    assert row["shelve_reason"] == "sensor being checked"
    assert actions.expire_shelves(db, at(300)) == []  # not yet
    assert actions.expire_shelves(db, at(602)) == [aid]
    # still active when the shelf expires: comes back unacknowledged, not silently
    assert state(db, aid) == "UNACK"
    assert [j["action"] for j in store.journal(db, aid)][-2:] == ["shelve", "shelve_expired"]


def test_shelved_alarm_that_cleared_returns_to_normal(db: psycopg.Connection, ctx: Context) -> None:
    active, cleared = pair(PT, "HH", 0, 60)
    store.apply_event(db, active, ctx)
    actions.shelve(db, AID, "sam", "known", 600, at(1), True)
    store.apply_event(db, cleared, ctx)
    assert state(db) == "SHELVED"  # still evaluated underneath, still hidden
    assert store.get_alarm(db, AID)["base_state"] == "RTNUN"
    actions.unshelve(db, AID, "sam", "done", at(100))
    assert state(db) == "NORMAL"


def test_critical_alarm_needs_a_supervisor_to_shelve(db: psycopg.Connection, ctx: Context) -> None:
    store.apply_event(db, pair(PT, "HH", 0, severity="critical")[0], ctx)
    assert store.get_alarm(db, AID)["priority"] == "critical"
    with pytest.raises(actions.ActionError) as err:
        actions.shelve(db, AID, "olga", "nuisance", 600, at(1), may_shelve_critical=False)
    assert err.value.status == 403
    assert state(db) == "UNACK"


def test_unit_maintenance_suppresses_by_design(db: psycopg.Connection, ctx: Context) -> None:
    store.apply_event(db, pair(PT, "HH", 0)[0], ctx)
    assert actions.set_unit_maintenance(
        db, "TK101", True, "sue", "valve work", at(1), ctx.plant
    ) == [AID]
    assert state(db) == "SUPPRESSED_BY_DESIGN"
    # new alarms of the unit arrive suppressed too
    store.apply_event(db, pair("TK101-TT-01", "H", 5)[0], ctx)
    assert state(db, "TK101-TT-01:H") == "SUPPRESSED_BY_DESIGN"
    actions.set_unit_maintenance(db, "TK101", False, "sue", "done", at(10), ctx.plant)
    assert state(db) == "UNACK"
    assert state(db, "TK101-TT-01:H") == "UNACK"
    with pytest.raises(actions.ActionError):
        actions.set_unit_maintenance(db, "NOPE", True, "sue", "", at(11), ctx.plant)


def test_out_of_service_and_return(db: psycopg.Connection, ctx: Context) -> None:
    active, cleared = pair(PT, "HH", 0, 20)
    store.apply_event(db, active, ctx)
    actions.acknowledge(db, AID, "olga", "", at(1))
    actions.set_out_of_service(db, AID, "sue", True, "transmitter replaced", at(2))
    assert state(db) == "OUT_OF_SERVICE"
    actions.set_out_of_service(db, AID, "sue", False, "back", at(3))
    assert state(db) == "UNACK"  # still abnormal on return: re-annunciated
    store.apply_event(db, cleared, ctx)
    assert state(db) == "RTNUN"
    actions.comment(db, AID, "olga", "bump test passed", at(30))
    assert store.journal(db, AID)[-1]["details"] == {"comment": "bump test passed"}


def test_journal_is_append_only(db: psycopg.Connection, ctx: Context) -> None:
    store.apply_event(db, pair(PT, "HH", 0)[0], ctx)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("UPDATE alarm_journal SET username = 'mallory'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("DELETE FROM alarm_journal")


def test_priority_from_rationalisation_and_hazard_grade(
    db: psycopg.Connection, ctx: Context
) -> None:
    # TK101 holds 430 t propane with 120 people nearby: R = 2 x 1.5 x 8.6 = 25.8 -> grade 3
    assert ctx.plant.grade("TK101") == 3
    store.apply_event(db, pair(PT, "HH", 0, severity="high")[0], ctx)
    assert store.get_alarm(db, AID)["priority"] == "high"
    store.apply_event(db, pair("TK101-TT-01", "FAULT_STUCK", 0, severity="medium")[0], ctx)
    fault = store.get_alarm(db, "TK101-TT-01:FAULT_STUCK")
    assert (fault["category"], fault["priority"]) == ("maintenance", "low")


def test_chattering_alarm_is_shelved_and_marked(db: psycopg.Connection, ctx: Context) -> None:
    events = [e for k in range(3) for e in pair(PT, "H", k * 15, k * 15 + 5)]
    for e in events:
        store.apply_event(db, e, ctx)
    row = store.get_alarm(db, f"{PT}:H")
    assert row["chattering"]
    assert row["chatter_count"] == 1
    assert row["state"] == "SHELVED"
    assert row["shelved_until"] == at(30) + timedelta(seconds=600)
    assert "chattering" in row["shelve_reason"]


def test_slow_repeats_are_not_chattering(db: psycopg.Connection, ctx: Context) -> None:
    for k in range(3):
        for e in pair(PT, "H", k * 40, k * 40 + 5):
            store.apply_event(db, e, ctx)
    assert not store.get_alarm(db, f"{PT}:H")["chattering"]
