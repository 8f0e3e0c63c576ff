"""The alerting service end to end: Kafka condition events -> PostgreSQL -> HTTP / SSE."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from common.settings import BaseProcessSettings
from tests.alerting.helpers import pair
from tests.alerting.service import PASSWORD, TOKENS, Alerting, SseReader, start_alerting
from tests.fixtures.processes import ServiceFactory, read_topic, wait_until
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=120)  # events in the past
PT = "TK101-PT-01"


@pytest.fixture
def alerting(
    service_factory: ServiceFactory, stack: BaseProcessSettings, isolation: Isolation
) -> Alerting:
    return start_alerting(service_factory, stack, isolation)


def test_auth_roles_and_validation(alerting: Alerting) -> None:
    a = alerting
    assert httpx.get(a.base + "/alarms").status_code == 401
    bad = httpx.get(a.base + "/alarms", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert "unknown" in bad.json()["detail"]
    # password login: wrong password 401, right one gives a session (cookie and token)
    assert (
        httpx.post(a.base + "/login", json={"username": "olga", "password": "x"}).status_code == 401
    )
    login = httpx.post(a.base + "/login", json={"username": "olga", "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["role"] == "operator"
    assert "chemwatch_session" in login.cookies
    session = {"Authorization": f"Bearer {login.json()['token']}"}
    assert httpx.get(a.base + "/me", headers=session).json() == {"user": "olga", "role": "operator"}
    with httpx.Client(base_url=a.base, cookies=login.cookies) as cookie_client:
        assert cookie_client.get("/me").json()["user"] == "olga"
    # every request validated: 422 with the field named
    a.send(pair(PT, "HH", 0, severity="critical", base=NOW))
    a.wait_state(f"{PT}:HH", "UNACK")
    invalid = a.post(f"/alarms/{PT}:HH/shelve", "supervisor", {"duration_s": 60})
    assert invalid.status_code == 422
    assert "reason" in json.dumps(invalid.json()["detail"])
    # viewers may not acknowledge; operators may not shelve a critical alarm
    denied = a.post(f"/alarms/{PT}:HH/ack", "viewer")
    assert denied.status_code == 403
    assert "needs operator" in denied.json()["detail"]
    shelve = {"reason": "nuisance", "duration_s": 60}
    no = a.post(f"/alarms/{PT}:HH/shelve", "operator", shelve)
    assert no.status_code == 403
    assert "supervisor" in no.json()["detail"]
    assert a.post(f"/alarms/{PT}:HH/shelve", "supervisor", shelve).json()["state"] == "SHELVED"
    # suppression by design is for supervisors only
    body = {"maintenance": True, "reason": "valve work"}
    put = httpx.put(a.base + "/units/TK101/maintenance", headers=a.headers("operator"), json=body)
    assert put.status_code == 403
    assert a.post("/alarms/none:HH/ack").status_code == 404
    schema = httpx.get(a.base + "/openapi.json").json()
    assert {"/alarms", "/stream", "/incidents", "/kpi/alarms", "/sites/risk"} <= set(
        schema["paths"]
    )
    assert TOKENS  # the tokens above come from settings, never from the database


def test_sessions_end_on_logout_and_on_expiry(
    service_factory: ServiceFactory, stack: BaseProcessSettings, isolation: Isolation
) -> None:
    """A password session is revoked by /logout (bearer or cookie) and ends after
    ``session_ttl_s``; ending one session leaves the user's others alone."""
    a = start_alerting(service_factory, stack, isolation, CHEMWATCH_ALERTING__SESSION_TTL_S="5")

    def login() -> httpx.Response:
        r = httpx.post(a.base + "/login", json={"username": "olga", "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r

    def me(token: str) -> httpx.Response:
        return httpx.get(a.base + "/me", headers={"Authorization": f"Bearer {token}"})

    first, second = login().json()["token"], login().json()["token"]
    out = httpx.post(a.base + "/logout", headers={"Authorization": f"Bearer {first}"})
    assert out.status_code == 200, out.text
    assert me(first).status_code == 401
    assert "unknown or expired" in me(first).json()["detail"]
    assert me(second).json()["user"] == "olga"  # the other session still works
    # logging out again with the revoked token is refused, not an error
    again = httpx.post(a.base + "/logout", headers={"Authorization": f"Bearer {first}"})
    assert again.status_code == 401
    # the cookie session ends the same way (and the cookie is cleared)
    by_cookie = login()
    with httpx.Client(base_url=a.base, cookies=by_cookie.cookies) as client:
        assert client.get("/me").status_code == 200
        assert client.post("/logout").status_code == 200
        assert "chemwatch_session" not in client.cookies
    assert me(by_cookie.json()["token"]).status_code == 401
    # expiry: the session of ``second`` is older than the 5 s TTL soon
    wait_until(lambda: me(second).status_code == 401, 15, "session expiry")
    assert me(second).json()["detail"] == "unknown or expired token"
    assert me(TOKENS["viewer"]).status_code == 200  # configured tokens do not expire


def test_every_transition_through_kafka(
    alerting: Alerting, db: psycopg.Connection, isolation: Isolation
) -> None:
    a = alerting
    aid = f"{PT}:HH"
    active, cleared = pair(PT, "HH", 0, 30, base=NOW)
    a.send([active])
    a.wait_state(aid, "UNACK")
    assert a.post(f"/alarms/{aid}/ack", body={"comment": "on it"}).json()["state"] == "ACKED"
    assert a.post(f"/alarms/{aid}/ack").status_code == 409
    shelved = a.post(f"/alarms/{aid}/shelve", body={"reason": "checking", "duration_s": 1})
    assert shelved.json()["state"] == "SHELVED"
    # the shelf expires by itself and the still-active alarm is annunciated again
    a.wait_state(aid, "UNACK", timeout=10)
    a.post(f"/alarms/{aid}/shelve", body={"reason": "again", "duration_s": 600})
    assert a.post(f"/alarms/{aid}/unshelve", body={"comment": "x"}).json()["state"] == "UNACK"
    assert a.post(f"/alarms/{aid}/comment", body={"text": "field check"}).status_code == 200
    put = httpx.put(
        a.base + "/units/TK101/maintenance",
        headers=a.headers("supervisor"),
        json={"maintenance": True, "reason": "valve work"},
    )
    assert put.json()["alarms_changed"] == [aid]
    assert a.alarm(aid)["state"] == "SUPPRESSED_BY_DESIGN"
    a.send([cleared])
    wait_until(lambda: a.alarm(aid)["base_state"] == "RTNUN", 15, "the clear underneath")
    httpx.put(
        a.base + "/units/TK101/maintenance",
        headers=a.headers("supervisor"),
        json={"maintenance": False, "reason": "done"},
    )
    assert a.alarm(aid)["state"] == "NORMAL"  # released and no longer abnormal
    service = {"out_of_service": True, "reason": "transmitter swap"}
    assert a.post(f"/alarms/{aid}/service", "operator", service).status_code == 403
    assert a.post(f"/alarms/{aid}/service", "supervisor", service).json()["state"] == (
        "OUT_OF_SERVICE"
    )
    a.send([active])  # a replay changes nothing
    again = pair(PT, "HH", 100, base=NOW)
    a.send(again)  # a new occurrence while out of service: evaluated, hidden
    wait_until(lambda: a.alarm(aid)["base_state"] == "UNACK", 15, "new occurrence underneath")
    assert a.alarm(aid)["state"] == "OUT_OF_SERVICE"
    back = {"out_of_service": False, "reason": "done"}
    assert a.post(f"/alarms/{aid}/service", "supervisor", back).json()["state"] == "UNACK"
    journal = a.get(f"/alarms/{aid}/journal").json()  # in event time; here in record order
    assert [j["action"] for j in sorted(journal, key=lambda j: j["id"])] == [
        "active",
        "acknowledge",
        "shelve",
        "shelve_expired",
        "shelve",
        "unshelve",
        "comment",
        "suppress",
        "cleared",
        "unsuppress",
        "out_of_service",
        "active",
        "return_to_service",
    ]
    users = {j["username"] for j in journal}
    assert {"system", "operator-user", "supervisor-user"} <= users
    history = a.get("/history", params={"hours": 1}).json()
    assert len(history) == len(journal)
    # every change, operators' included, reaches the `alarms` topic in order
    count = db.execute("SELECT count(*) FROM change_log").fetchone()[0]
    records = read_topic(a.settings, isolation.alarms_topic, count)
    messages = [json.loads(r.value) for r in records]
    assert [m["change_id"] for m in messages] == sorted(m["change_id"] for m in messages)
    assert {r.key for r in records} == {b"TK101"}
    acked = [m for m in messages if m["state"] == "ACKED"]
    assert acked[0]["changed_by"] == "operator-user"
    assert acked[0]["from_state"] == "UNACK"


def test_sse_resume_misses_nothing(alerting: Alerting, db: psycopg.Connection) -> None:
    a = alerting
    first = SseReader(a.base + "/stream", a.headers("viewer"))
    other = SseReader(a.base + "/stream", a.headers("operator"))  # shares the poller
    time.sleep(0.5)
    a.send(pair("TK101-TT-01", "H", 0, base=NOW) + pair("TK101-TT-02", "H", 1, base=NOW))
    wait_until(lambda: len(first.events) >= 3, 15, "hello + two alarm events")
    wait_until(lambda: len(other.events) >= 3, 15, "the same on the second stream")
    first.close()
    other.close()
    assert [e.get("id") for e in other.events] == [e.get("id") for e in first.events]
    last_id = first.events[-1]["id"]
    # while disconnected: more changes
    a.send(pair("TK101-LT-01", "HH", 2, base=NOW))
    a.wait_state("TK101-LT-01:HH", "UNACK")
    a.post("/alarms/TK101-TT-01:H/ack")
    headers = a.headers("viewer") | {"Last-Event-ID": last_id}
    resumed = SseReader(a.base + "/stream", headers)
    expected = [
        r[0]
        for r in db.execute(
            "SELECT id FROM change_log WHERE id > %s ORDER BY id", (int(last_id),)
        ).fetchall()
    ]
    assert len(expected) == 2
    wait_until(lambda: len(resumed.events) >= 3, 15, "the missed events after resume")
    resumed.close()
    assert [int(e["id"]) for e in resumed.events[1:]] == expected
    got = [json.loads(e["data"]) for e in resumed.events[1:]]
    assert [(g["alarm_id"], g["state"]) for g in got] == [
        ("TK101-LT-01:HH", "UNACK"),
        ("TK101-TT-01:H", "ACKED"),
    ]
    # a stream still open does not hold up a clean stop
    holding = SseReader(a.base + "/stream", a.headers("viewer"))
    time.sleep(0.5)
    holding.close()  # only tells the reader thread that the end is expected
    started = time.monotonic()
    assert a.service.stop() == 0, a.service.log()
    assert time.monotonic() - started < 10


def test_incidents_risk_and_kpis(alerting: Alerting) -> None:
    a = alerting
    a.send(pair("TK201-GD-01", "HH", 0, unit="TK201", base=NOW))
    a.send(pair("TK201-GD-02", "HH", 20, unit="TK201", base=NOW))
    incident = wait_until(lambda: a.get("/incidents").json(), 15, "an incident")[0]
    assert (incident["rule_id"], incident["level"]) == ("gas-second-level-two-detectors", "red")
    risk = {r["site_id"]: r for r in a.get("/sites/risk").json()}
    assert risk["haibin-terminal"]["level"] == "red"
    assert risk["haibin-terminal"]["worst_hazard_grade"] == 2
    assert a.post(f"/incidents/{incident['id']}/ack").json()["acked_by"] == "operator-user"
    a.send(pair("TK201-GD-03", "FAULT_STALE", 30, unit="TK201", severity="medium", base=NOW))
    fault = a.wait_state("TK201-GD-03:FAULT_STALE", "UNACK")
    assert fault["category"] == "maintenance"
    assert len(a.get("/incidents").json()) == 1  # a sensor fault makes no process incident
    kpis = a.get("/kpi/alarms", params={"hours": 1}).json()
    assert kpis["total_alarms"] == 3
    assert kpis["standing"] == 3
    assert {c["area"] for c in kpis["consoles"]} == {"Ammonia storage"}
    assert kpis["bad_actors"][0]["activations"] == 1
    sites = {s["site_id"]: s for s in a.get("/kpi/sites", params={"hours": 1}).json()}
    assert sites["haibin-terminal"]["alarms"] == 2  # process alarms only
    assert sites["haibin-terminal"]["sensors"] > 0
    assert a.get("/kpi/alarms", params={"hours": -1}).status_code == 422
