"""Secrets never appear in logs or /metrics.

The whole pipeline runs with distinctive secrets, at DEBUG level, and is exercised so
that every secret is actually used: MQTT passwords on a TLS broker with ACLs, a Kafka
SCRAM password on a SASL_SSL broker with a test CA (both private), a PostgreSQL role
made for the test with a strong random password, API tokens, a login password and the
session token it yields, a webhook HMAC key. A gas reading above HH goes from a site
gateway through ingest, Kafka, the detectors and alerting to a signed webhook; then
every process log, the brokers' logs, what PostgreSQL logged meanwhile and every
/metrics page are searched for each secret and for the database connection string.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from alerting.api.auth import hash_password
from chemwatch.ports import free_port
from chemwatch.stack.config import StackSettings
from chemwatch.stack.postgres import Postgres
from common.migrate import migrate
from common.settings import BaseProcessSettings, DatabaseSettings
from tests.alerting.receivers import HttpReceiver, serve
from tests.fixtures.processes import ServiceFactory, http_base, wait_until
from tests.security.broker import (
    BRIDGE_PASSWORD,
    GATEWAY_PASSWORD,
    GATEWAY_USER,
    PREFIX,
    SITE_A,
    PrivateBroker,
    client,
)
from tests.security.kafka_broker import KAFKA_PASSWORD, SecuredKafka

pytestmark = pytest.mark.integration

OPERATOR_TOKEN = "optok-Vw8sJ2mQx7Lr5Kp1"
VIEWER_TOKEN = "vwtok-Nf3bY6cT0hGd9Za4"
LOGIN_PASSWORD = "login-pw-Rk2Jq8Ws5Xe1"
WEBHOOK_SECRET = "whsec-Tb7Gm3Lq9Vc4Np6"
WRONG_TOKEN = "guess-Qm4Xr7Pv2Lk9Jt3"
GAS = "TK101-GD-01"  # HH 50 %LEL, on-delay 3 s


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from serve(HttpReceiver())


@pytest.fixture
def private_role(stack: BaseProcessSettings) -> Iterator[DatabaseSettings]:
    """A login role with a strong random password and its own migrated schema.

    Made by the stack's superuser (over the server's private Unix socket): the shared
    role's password is the word "chemwatch", which every log contains anyway.
    """
    tag = uuid.uuid4().hex[:10]
    role, schema = f"sec_role_{tag}", f"sec_{tag}"
    # Random, plus a space, quotes and a backslash that a badly quoted DSN would break on.
    password = secrets.token_urlsafe(24) + " 'q\\\"x"
    superuser = conninfo_to_dict(Postgres(StackSettings(), stack)._superuser_conninfo())
    superuser["dbname"] = stack.database.dbname
    with psycopg.connect(make_conninfo(**superuser), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
    database = stack.database.model_copy(
        update={"user": role, "password": SecretStr(password), "db_schema": schema}
    )
    try:
        migrate(database)
        yield database
    finally:
        with psycopg.connect(make_conninfo(**superuser), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:  # not listening yet, or slow on a busy machine
        return False


def _postgres_log() -> Path:
    return StackSettings().home / "postgres" / "postgres.log"


def test_no_secret_in_logs_or_metrics(
    broker: PrivateBroker,
    secured_kafka: SecuredKafka,
    private_role: DatabaseSettings,
    service_factory: ServiceFactory,
    receiver: HttpReceiver,
) -> None:
    pg_log = _postgres_log()
    pg_log_start = pg_log.stat().st_size if pg_log.exists() else 0
    db_password = private_role.password.get_secret_value()
    common = (
        {"CHEMWATCH_LOG_LEVEL": "DEBUG"}
        | broker.env()
        | secured_kafka.env()
        | {
            "CHEMWATCH_DATABASE__USER": private_role.user,
            "CHEMWATCH_DATABASE__PASSWORD": db_password,
            "CHEMWATCH_DATABASE__DB_SCHEMA": private_role.db_schema,
        }
    )
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
        | {
            "CHEMWATCH_HTTP__PORT": str(port),
            "CHEMWATCH_ALERTING__USERS": json.dumps(users),
            "CHEMWATCH_ALERTING__NOTIFY": json.dumps(notify),
            "CHEMWATCH_ALERTING__TICK_S": "0.2",
        },
    )
    detectors = service_factory("detectors", env=common)
    ingest = service_factory("ingest", env=common)
    services = [ingest, detectors, alerting]
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    wait_until(lambda: _healthy(base), 60, "alerting /healthz")

    # A site gateway (TLS, its own account) reports gas above HH for longer than the
    # on-delay: through ingest, SASL_SSL Kafka and the detectors (private role) it
    # becomes a condition, then an alarm, then a signed webhook.
    gateway = client(broker.mqtt(username=GATEWAY_USER, password=GATEWAY_PASSWORD))
    gateway.connect("127.0.0.1", broker.port)
    gateway.loop_start()
    try:
        now_ms = int(time.time() * 1000)
        topic = f"{PREFIX}/{SITE_A}/TK101/{GAS}"
        for ago_s in range(8, -1, -1):
            payload = json.dumps({"ts": now_ms - ago_s * 1000, "value": 62.0})
            gateway.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        gateway.disconnect()
        gateway.loop_stop()
    wait_until(lambda: receiver.requests, 60, "the signed webhook of the gas alarm")
    first = receiver.requests[0]
    assert GAS in first.body.decode()
    stamp = first.headers["X-ChemWatch-Timestamp"]
    mac = hmac.new(WEBHOOK_SECRET.encode(), stamp.encode() + b"." + first.body, hashlib.sha256)
    assert first.headers["X-ChemWatch-Signature"] == "sha256=" + mac.hexdigest()
    with psycopg.connect(private_role.conninfo()) as conn:
        stored = conn.execute("SELECT count(*) FROM readings WHERE sensor_id = %s", (GAS,))
        assert stored.fetchone() == (9,)

    # API: tokens, a password login and its session token, a wrong token, an ack.
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
    ack = httpx.post(
        f"{base}/alarms/{GAS}:HH/ack",
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        json={"comment": "seen"},
        timeout=10,
    )
    assert ack.status_code == 200, ack.text

    pages = {
        s.name: httpx.get(http_base(s) + "/metrics", timeout=10).text for s in (ingest, detectors)
    }
    pages["alerting"] = httpx.get(f"{base}/metrics", timeout=10).text
    for service in services:
        assert service.stop() == 0, service.log()
    logs = {s.name: s.log() for s in services}
    logs["mosquitto"] = (broker.home / "mosquitto" / "mosquitto.log").read_text(errors="replace")
    logs["kafka"] = secured_kafka.log_text()
    with pg_log.open("rb") as handle:
        handle.seek(pg_log_start)
        logs["postgresql"] = handle.read().decode(errors="replace")
    # The logs are real: DEBUG output of every process, the bridge's TLS connection, and
    # the Kafka clients authenticated as the SCRAM user on the SASL_SSL listener.
    assert all(len(logs[s.name]) > 200 for s in services), {k: len(v) for k, v in logs.items()}
    assert "bridge-" in logs["mosquitto"]
    assert GATEWAY_USER in logs["mosquitto"]
    assert "SASL_SSL" in logs["kafka"]

    secrets_used = {
        "mqtt bridge password": BRIDGE_PASSWORD,
        "mqtt gateway password": GATEWAY_PASSWORD,
        "kafka scram password": KAFKA_PASSWORD,
        "database password": db_password,
        "database connection string": private_role.conninfo(),
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
        for what, secret in secrets_used.items()
        if secret in text
    ]
    assert leaks == []
