"""A running alerting service for tests: users, condition events on Kafka, SSE reader."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from alerting.api.auth import hash_password
from chemwatch.ports import free_port
from common.conditions import ConditionEvent
from common.settings import BaseProcessSettings
from tests.fixtures.processes import Service, ServiceFactory, wait_until
from tests.fixtures.services import Isolation

TOKENS = {"viewer": "viewer-token-t", "operator": "operator-token-t", "supervisor": "sup-token-t"}
PASSWORD = "correct horse battery staple"


@dataclass
class Alerting:
    base: str
    service: Service
    settings: BaseProcessSettings
    topic: str

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"}

    def get(self, path: str, role: str = "viewer", **kw: Any) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers(role), timeout=10, **kw)

    def post(self, path: str, role: str = "operator", body: Any = None) -> httpx.Response:
        return httpx.post(self.base + path, headers=self.headers(role), json=body or {}, timeout=10)

    def send(self, events: Iterable[ConditionEvent]) -> None:
        """Publish condition events on the test's conditions topic (key = unit).

        In a thread of its own: Playwright's sync API keeps an event loop running here.
        """
        batch = list(events)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _send(self.settings, self.topic, batch)).result(30)

    def alarm(self, aid: str) -> dict[str, Any] | None:
        r = self.get(f"/alarms/{aid}")
        return r.json() if r.status_code == 200 else None

    def wait_state(self, aid: str, state: str, timeout: float = 15) -> dict[str, Any]:
        return wait_until(
            lambda: a if (a := self.alarm(aid)) and a["state"] == state else None,
            timeout,
            f"{aid} in state {state} (now {self.alarm(aid)})",
            every=0.05,
        )


async def _send(settings: BaseProcessSettings, topic: str, events: list[ConditionEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(topic, e.to_json(), key=e.unit.encode())
    finally:
        await producer.stop()


def start_alerting(
    service_factory: ServiceFactory,
    stack: BaseProcessSettings,
    isolation: Isolation,
    **env: str,
) -> Alerting:
    port = free_port()
    users = [
        {"name": f"{role}-user", "token": token, "role": role} for role, token in TOKENS.items()
    ] + [{"name": "olga", "password_hash": hash_password(PASSWORD), "role": "operator"}]
    service = service_factory(
        "alerting",
        env={
            "CHEMWATCH_HTTP__PORT": str(port),
            "CHEMWATCH_ALERTING__USERS": json.dumps(users),
            "CHEMWATCH_ALERTING__TICK_S": "0.2",
            **env,
        },
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, "alerting /healthz")
    return Alerting(base, service, stack, isolation.conditions_topic)


@dataclass
class SseReader:
    """Collects server-sent events in a thread until closed."""

    url: str
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise  # the server ending a stream we still wanted is a failure

    def _read(self) -> None:
        current: dict[str, Any] = {}
        with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    if "data" in current and current.get("event") != "heartbeat":
                        self.events.append(current)
                    current = {}
                    continue
                name, _, value = line.partition(": ")
                if name in ("id", "event", "data"):
                    current[name] = value

    def close(self) -> None:
        self._stop.set()
