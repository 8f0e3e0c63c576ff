"""Alerting started while Kafka is away: the operators' API serves the stored alarms
meanwhile, and the consumer starts once Kafka answers."""

from __future__ import annotations

import json

import httpx
import pytest

from chemwatch.ports import free_port
from tests.alerting.service import TOKENS
from tests.fixtures.late_proxy import LateProxy
from tests.fixtures.processes import ServiceFactory, wait_until

pytestmark = pytest.mark.integration


def _status(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(url, headers=headers, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_the_api_serves_while_kafka_is_away(
    service_factory: ServiceFactory, late_kafka: LateProxy
) -> None:
    port = free_port()
    users = [{"name": "vic", "token": TOKENS["viewer"], "role": "viewer"}]
    alerting = service_factory(
        "alerting",
        env={
            "CHEMWATCH_HTTP__PORT": str(port),
            "CHEMWATCH_ALERTING__USERS": json.dumps(users),
            "CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{late_kafka.port}",
        },
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: "waits for Kafka" in alerting.log(), 30, "alerting to wait for Kafka")
    wait_until(lambda: _status(f"{base}/alarms", TOKENS["viewer"]) == 200, 30, "GET /alarms")
    assert _status(f"{base}/healthz") == 503  # not consuming: health says so
    assert alerting.alive(), alerting.log()

    late_kafka.open()
    wait_until(lambda: _status(f"{base}/healthz") == 200, 60, "alerting consuming")
    assert alerting.stop() == 0
