"""Secrets never appear in logs or /metrics.

The whole pipeline runs with distinctive secrets (MQTT passwords on a TLS broker with
ACLs, a Kafka SASL password, API tokens, a login password and the session token it
yields, a webhook HMAC key), at DEBUG level, and is exercised so that every secret is
actually used; then every process log, the broker's log and every /metrics page are
searched for each of them. (The database password is the shared stack's "chemwatch",
a word every log contains, so it cannot be checked this way; it is a SecretStr like
the others.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from alerting.api.auth import hash_password
from common.settings import BaseProcessSettings
from tests.alerting.helpers import pair
from tests.alerting.receivers import HttpReceiver, serve
from tests.alerting.service import _send
from tests.fixtures.processes import Service, ServiceFactory, free_port, wait_until
from tests.fixtures.services import Isolation
from tests.security.broker import (
    BRIDGE_PASSWORD,
    GATEWAY_PASSWORD,
    GATEWAY_USER,
    PREFIX,
    SITE_A,
    PrivateBroker,
    client,
)

pytestmark = pytest.mark.integration

OPERATOR_TOKEN = "optok-Vw8sJ2mQx7Lr5Kp1"
VIEWER_TOKEN = "vwtok-Nf3bY6cT0hGd9Za4"
LOGIN_PASSWORD = "login-pw-Rk2Jq8Ws5Xe1"
WEBHOOK_SECRET = "whsec-Tb7Gm3Lq9Vc4Np6"
KAFKA_SASL_PASSWORD = "sasl-pw-Hy5Dk1Zs8Fw2"
WRONG_TOKEN = "guess-Qm4Xr7Pv2Lk9Jt3"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from serve(HttpReceiver())


def _metrics_base(service: Service) -> str:
    found = wait_until(
        lambda: re.search(r"metrics and health on (http://\S+)", service.log()),
        60,
        f"{service.name} http port",
    )
    return found.group(1)


def test_no_secret_in_logs_or_metrics(
    broker: PrivateBroker,
    service_factory: ServiceFactory,
    isolation: Isolation,
    stack: BaseProcessSettings,
    db: psycopg.Connection,
    receiver: HttpReceiver,
) -> None:
    common = {
        "CHEMWATCH_LOG_LEVEL": "DEBUG",
        "CHEMWATCH_KAFKA__SASL_USERNAME": "chemwatch",
        # Not used with PLAINTEXT, but loaded like any setting: it must not be printed.
        "CHEMWATCH_KAFKA__SASL_PASSWORD": KAFKA_SASL_PASSWORD,
    }
    users = [
        {"name": "olga", "token": OPERATOR_TOKEN, "role": "operator"},
        {"name": "vic", "token": VIEWER_TOKEN, "role": "viewer"},
        {"name": "sam", "password_hash": hash_password(LOGIN_PASSWORD), "role": "supervisor"},
    ]
    notify = {
        "channels": [
            {"name": "hook", "kind": "webhook", "url": receiver.url, "secret": WEBHOOK_SECRET}
        ],
        "routes": [{"min_priority": "low", "min_level": "blue", "tiers": [{"channels": ["hook"]}]}],
        "every_s": 0.2,
    }
    port = free_port()
    alerting = service_factory(
        "alerting",
        env=common
        | broker.env()
        | {
            "CHEMWATCH_HTTP__PORT": str(port),
            "CHEMWATCH_ALERTING__USERS": json.dumps(users),
            "CHEMWATCH_ALERTING__NOTIFY": json.dumps(notify),
            "CHEMWATCH_ALERTING__TICK_S": "0.2",
        },
    )
    detectors = service_factory("detectors", env=common | broker.env())
    ingest = service_factory("ingest", env=common | broker.env())
    services = [ingest, detectors, alerting]
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")

    # MQTT: a gateway's reading goes through the TLS bridge into the database.
    gateway = client(broker.mqtt(username=GATEWAY_USER, password=GATEWAY_PASSWORD))
    gateway.connect("127.0.0.1", broker.port)
    gateway.loop_start()
    try:
        payload = json.dumps({"ts": int(time.time() * 1000) - 1000, "value": 7.5})
        topic = f"{PREFIX}/{SITE_A}/TK101/TK101-PT-01"
        gateway.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        gateway.disconnect()
        gateway.loop_stop()
    wait_until(
        lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] > 0,  # type: ignore[index]
        60,
        "the gateway's reading in the database",
    )

    # API: tokens, a password login and its session token, a wrong token.
    wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, 60, "alerting")
    bearer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    assert httpx.get(f"{base}/alarms", headers=bearer, timeout=10).status_code == 200
    wrong = {"Authorization": f"Bearer {WRONG_TOKEN}"}
    assert httpx.get(f"{base}/alarms", headers=wrong, timeout=10).status_code == 401
    refused = httpx.post(
        f"{base}/login", json={"username": "sam", "password": WRONG_TOKEN}, timeout=10
    )
    assert refused.status_code == 401
    login = httpx.post(
        f"{base}/login", json={"username": "sam", "password": LOGIN_PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    session = login.json()["token"]
    me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {session}"}, timeout=10)
    assert me.json()["user"] == "sam"

    # An alarm, acknowledged with the operator token, notified by a signed webhook.
    import asyncio

    event = pair("TK101-PT-01", "HH", 0, base=datetime.now(UTC))[0]
    asyncio.run(_send(stack, isolation.conditions_topic, [event]))
    wait_until(lambda: receiver.requests, 30, "the signed webhook")
    first = receiver.requests[0]
    stamp = first.headers["X-ChemWatch-Timestamp"]
    mac = hmac.new(WEBHOOK_SECRET.encode(), stamp.encode() + b"." + first.body, hashlib.sha256)
    assert first.headers["X-ChemWatch-Signature"] == "sha256=" + mac.hexdigest()
    ack = httpx.post(
        f"{base}/alarms/TK101-PT-01:HH/ack",
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        json={"comment": "seen"},
        timeout=10,
    )
    assert ack.status_code == 200, ack.text

    pages = {
        s.name: httpx.get(_metrics_base(s) + "/metrics", timeout=10).text
        for s in (ingest, detectors)
    }
    pages["alerting"] = httpx.get(f"{base}/metrics", timeout=10).text
    for service in services:
        assert service.stop() == 0, service.log()
    logs = {s.name: s.log() for s in services}
    logs["mosquitto"] = (broker.home / "mosquitto" / "mosquitto.log").read_text(errors="replace")
    # The logs are real: DEBUG output of every process, the bridge's TLS connection.
    assert all(len(text) > 200 for text in logs.values()), {k: len(v) for k, v in logs.items()}
    assert "bridge-" in logs["mosquitto"]
    assert GATEWAY_USER in logs["mosquitto"]

    secrets = {
        "mqtt bridge password": BRIDGE_PASSWORD,
        "mqtt gateway password": GATEWAY_PASSWORD,
        "kafka sasl password": KAFKA_SASL_PASSWORD,
        "operator token": OPERATOR_TOKEN,
        "viewer token": VIEWER_TOKEN,
        "wrong token": WRONG_TOKEN,
        "login password": LOGIN_PASSWORD,
        "session token": session,
        "webhook secret": WEBHOOK_SECRET,
    }
    leaks = [
        f"{what} in {where}"
        for where, text in (logs | {f"{k} /metrics": v for k, v in pages.items()}).items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert leaks == []
