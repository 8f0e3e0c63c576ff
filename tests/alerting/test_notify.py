"""Escalation and notifications on the real PostgreSQL with local receivers."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller

from alerting import actions, store
from alerting.context import build_context
from alerting.notify.delivery import backoff_s, deliver_due
from alerting.notify.escalation import escalate
from alerting.notify.settings import Channel, NotifySettings
from alerting.settings import AlertingSettings
from alerting.store import Context
from chemwatch.ports import free_port
from common.settings import BaseProcessSettings
from tests.alerting.helpers import at, pair
from tests.alerting.receivers import HttpReceiver, serve
from tests.alerting.service import start_alerting
from tests.fixtures.processes import ServiceFactory, wait_until
from tests.fixtures.services import ROOT, Isolation

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-for-tests"


@pytest.fixture
def ctx() -> Context:
    return build_context(
        AlertingSettings(
            plant=ROOT / "examples" / "plant.yaml",
            alerting={"rules": ROOT / "examples" / "rules.yaml"},
        )
    )


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from serve(HttpReceiver())


def settings(url: str, **channel: object) -> NotifySettings:
    return NotifySettings.model_validate(
        {
            "channels": [
                {"name": "hook", "kind": "webhook", "url": url, "secret": SECRET, **channel},
                {"name": "mail", "kind": "smtp", "mail_to": ["shift@plant.example"]},
            ],
            "routes": [
                {
                    "min_priority": "high",
                    "tiers": [
                        {"after_s": 0, "channels": ["hook"]},
                        {"after_s": 300, "channels": ["hook", "mail"]},
                    ],
                }
            ],
        }
    )


def keys(db: psycopg.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT idempotency_key FROM notifications ORDER BY 1")]


def test_escalation_tiers_with_an_injectable_clock(db: psycopg.Connection, ctx: Context) -> None:
    notify = settings("http://127.0.0.1:1/unused")
    event = pair("TK101-PT-01", "HH", 0, severity="high")[0]
    store.apply_event(db, event, ctx)
    store.apply_event(db, pair("TK101-TT-01", "H", 0, severity="low")[0], ctx)  # below route
    occ = event.occurrence_id
    assert escalate(db, notify, at(0)) == 1
    assert keys(db) == [f"alarm:{occ}:0:hook"]
    assert escalate(db, notify, at(299)) == 0
    assert escalate(db, notify, at(300)) == 2  # next tier at its deadline
    assert escalate(db, notify, at(3000)) == 0  # exactly once per (occurrence, tier, channel)
    # acknowledged before its deadline: the next tier never fires
    second = pair("TK101-PT-02", "HH", 0, severity="high")[0]
    store.apply_event(db, second, ctx)
    escalate(db, notify, at(10))
    actions.acknowledge(db, "TK101-PT-02:HH", "olga", "", at(20))
    escalate(db, notify, at(400))
    assert [k for k in keys(db) if second.occurrence_id in k] == [
        f"alarm:{second.occurrence_id}:0:hook"
    ]


def test_the_last_tier_repeats_until_acknowledged(db: psycopg.Connection, ctx: Context) -> None:
    notify = NotifySettings.model_validate(
        {
            "channels": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:1/x"}],
            "routes": [{"repeat_s": 600, "tiers": [{"after_s": 60, "channels": ["hook"]}]}],
        }
    )
    event = pair("TK101-PT-01", "HH", 0)[0]
    store.apply_event(db, event, ctx)
    assert escalate(db, notify, at(59)) == 0
    assert escalate(db, notify, at(60)) == 1
    assert escalate(db, notify, at(659)) == 0
    assert escalate(db, notify, at(1300)) == 2  # repeats at 660 and 1260
    actions.acknowledge(db, "TK101-PT-01:HH", "olga", "", at(1301))
    assert escalate(db, notify, at(5000)) == 0
    occ = event.occurrence_id
    assert keys(db) == [f"alarm:{occ}:0.1:hook", f"alarm:{occ}:0.2:hook", f"alarm:{occ}:0:hook"]


def test_a_worsening_incident_notifies_at_once(db: psycopg.Connection, ctx: Context) -> None:
    notify = settings("http://127.0.0.1:1/unused")
    for k, s in enumerate(["LD301-GD-01", "LD301-GD-02"]):
        store.apply_event(db, pair(s, "HH", k, unit="LD301", severity="medium")[0], ctx)
    escalate(db, notify, at(2))
    incident_keys = [k for k in keys(db) if k.startswith("incident:")]
    assert len(incident_keys) == 1
    assert ":yellow:0:hook" in incident_keys[0]
    store.apply_event(db, pair("LD301-GD-03", "HH", 3, unit="LD301", severity="critical")[0], ctx)
    escalate(db, notify, at(4))  # level rose to orange: tier 0 again, now
    assert sum(":orange:0:hook" in k for k in keys(db)) == 1


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    channel = Channel(name="x", kind="webhook", url="http://x", backoff_s=1, backoff_max_s=10)
    rng = random.Random(7)
    for attempt, full in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]:
        delays = [backoff_s(channel, attempt, rng) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > 0  # jittered


def test_webhook_signed_retried_then_sent(
    db: psycopg.Connection, ctx: Context, receiver: HttpReceiver
) -> None:
    receiver.statuses = [500, 503]
    notify = settings(receiver.url, backoff_s=1, max_attempts=5)
    store.apply_event(db, pair("TK101-PT-01", "HH", 0)[0], ctx)
    escalate(db, notify, at(0))
    rng = random.Random(1)
    with httpx.Client() as client:
        assert [s for _, s in deliver_due(db, notify, client, at(0), rng)] == ["pending"]
        assert deliver_due(db, notify, client, at(0.1), rng) == []  # backing off
        assert [s for _, s in deliver_due(db, notify, client, at(1), rng)] == ["pending"]
        assert [s for _, s in deliver_due(db, notify, client, at(5), rng)] == ["sent"]
        assert deliver_due(db, notify, client, at(60), rng) == []
    assert len(receiver.requests) == 3
    first = receiver.requests[0]
    assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {keys(db)[0]}
    stamp = first.headers["X-ChemWatch-Timestamp"]
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + first.body, hashlib.sha256)
    assert first.headers["X-ChemWatch-Signature"] == "sha256=" + mac.hexdigest()
    assert json.loads(first.body)["alarm_id"] == "TK101-PT-01:HH"
    row = db.execute("SELECT status, attempts, sent_at FROM notifications").fetchone()
    assert row == ("sent", 3, at(5))


def test_dead_letter_after_max_attempts(
    db: psycopg.Connection, ctx: Context, receiver: HttpReceiver
) -> None:
    receiver.statuses = [500] * 10
    notify = settings(receiver.url, backoff_s=1, max_attempts=3)
    store.apply_event(db, pair("TK101-PT-01", "HH", 0)[0], ctx)
    escalate(db, notify, at(0))
    with httpx.Client() as client:
        for t in (0, 10, 20, 30, 40):
            deliver_due(db, notify, client, at(t), random.Random(t))
    row = db.execute("SELECT status, attempts, last_error FROM notifications").fetchone()
    assert row[:2] == ("dead", 3)
    assert "500" in row[2]
    assert len(receiver.requests) == 3


def test_email_through_a_local_smtp_server(db: psycopg.Connection, ctx: Context) -> None:
    class Inbox:
        def __init__(self) -> None:
            self.messages: list[bytes] = []

        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            self.messages.append(envelope.content)  # type: ignore[attr-defined]
            return "250 OK"

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        notify = NotifySettings.model_validate(
            {
                "channels": [
                    {
                        "name": "mail",
                        "kind": "smtp",
                        "smtp_port": port,
                        "mail_to": ["shift@plant.example"],
                    }
                ],
                "routes": [{"tiers": [{"channels": ["mail"]}]}],
            }
        )
        store.apply_event(db, pair("TK101-PT-01", "HH", 0)[0], ctx)
        escalate(db, notify, at(0))
        with httpx.Client() as client:
            assert [s for _, s in deliver_due(db, notify, client, at(0), random.Random())] == [
                "sent"
            ]
    finally:
        controller.stop()
    (raw,) = inbox.messages
    message = email.message_from_bytes(raw)
    assert message["To"] == "shift@plant.example"
    assert "HIGH alarm TK101-PT-01:HH" in message["Subject"]


ALERTMANAGER = shutil.which("prometheus-alertmanager")


@pytest.mark.skipif(ALERTMANAGER is None, reason="Debian prometheus-alertmanager not installed")
def test_alertmanager_receives_the_alert(
    db: psycopg.Connection, ctx: Context, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text('route: {receiver: "null"}\nreceivers: [{name: "null"}]\n')
    proc = subprocess.Popen(
        [
            ALERTMANAGER or "",
            f"--config.file={config}",
            f"--storage.path={tmp_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(base + "/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, "alertmanager ready")
        notify = NotifySettings.model_validate(
            {
                "channels": [{"name": "am", "kind": "alertmanager", "url": base}],
                "routes": [{"tiers": [{"channels": ["am"]}]}],
            }
        )
        now = datetime.now(UTC)
        store.apply_event(db, pair("TK101-PT-01", "HH", 0, base=now - timedelta(seconds=5))[0], ctx)
        escalate(db, notify, now)
        with httpx.Client() as client:
            assert [s for _, s in deliver_due(db, notify, client, now, random.Random())] == ["sent"]
        alerts = httpx.get(base + "/api/v2/alerts").json()
        assert [a["labels"]["alarm_id"] for a in alerts] == ["TK101-PT-01:HH"]
        assert alerts[0]["labels"]["priority"] == "high"
    finally:
        proc.terminate()
        proc.wait(10)


def test_exactly_one_notification_across_a_restart(
    service_factory: ServiceFactory,
    stack: BaseProcessSettings,
    isolation: Isolation,
    receiver: HttpReceiver,
    db: psycopg.Connection,
) -> None:
    notify = {
        "channels": [{"name": "hook", "kind": "webhook", "url": receiver.url, "secret": SECRET}],
        "routes": [{"tiers": [{"channels": ["hook"]}]}],
        "every_s": 0.2,
    }
    env = {"CHEMWATCH_ALERTING__NOTIFY": json.dumps(notify)}
    first = start_alerting(service_factory, stack, isolation, **env)
    first.send(pair("TK101-PT-01", "HH", 0, base=datetime.now(UTC) - timedelta(seconds=5)))
    wait_until(lambda: receiver.requests, 15, "the webhook call")
    assert first.service.stop() == 0
    second = start_alerting(service_factory, stack, isolation, **env)
    time.sleep(2)  # several escalation passes of the restarted service
    assert second.service.alive()
    assert len(receiver.requests) == 1
    assert db.execute("SELECT count(*), min(status) FROM notifications").fetchone() == (1, "sent")
