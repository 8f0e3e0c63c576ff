"""Private names for one benchmark run and the ChemWatch processes behind them.

Like the tests' ``isolation`` fixture: own Kafka topics, consumer groups, MQTT topic
prefix, share group and database schema on the shared stack, all removed afterwards,
so a run never disturbs anyone else using the same Mosquitto, Kafka and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from chemwatch.bench_load import clear_session, delete_topics
from chemwatch.ports import free_port
from common import kafka as kafka_clients
from common.migrate import migrate
from common.settings import BaseProcessSettings, DatabaseSettings

ROOT = Path(__file__).resolve().parents[2]
_ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


@dataclass
class Names:
    """Everything private to one run."""

    tag: str = field(default_factory=lambda: "e2e" + uuid.uuid4().hex[:8])

    @property
    def schema(self) -> str:
        return f"bench_{self.tag}"

    @property
    def prefix(self) -> str:
        return f"bench/{self.tag}"

    def topic(self, name: str) -> str:
        return f"{self.tag}.{name}"

    @property
    def topics(self) -> list[str]:
        return [self.topic(n) for n in ("readings", "readings.dlq", "conditions", "alarms")]


@dataclass
class Process:
    """One ChemWatch process of the run."""

    name: str  # ingest-0, detectors-1, alerting
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int  # its /metrics + /healthz (and, for alerting, the API)
    package: str  # python -m <package>
    extra: dict[str, str]  # its own environment variables (kept for a restart)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def error_lines(self) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks the process logged."""
        return [line for line in self.log().splitlines() if _ERROR_LINE.search(line)]


class Services:
    """The stack's private names plus ingest bridges, detector workers and alerting."""

    def __init__(
        self,
        settings: BaseProcessSettings,
        plant: Path,
        logs: Path,
        bridges: int = 1,
        workers: int = 1,
        partitions: int = 6,
    ) -> None:
        self.settings = settings
        self.plant = plant
        self.logs = logs
        self.bridges = bridges
        self.workers = workers
        self.partitions = max(partitions, workers)
        self.names = Names()
        self.token = secrets.token_urlsafe(18)
        self.processes: list[Process] = []

    # ------------------------------------------------------------------ set-up

    @property
    def database(self) -> DatabaseSettings:
        return self.settings.database.model_copy(update={"db_schema": self.names.schema})

    @property
    def mqtt_prefix(self) -> str:
        return self.names.prefix

    def env(self) -> dict[str, str]:
        """Environment of every service process: the stack's addresses, private names."""
        s, n = self.settings, self.names
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
        return base | {
            "CHEMWATCH_PLANT": str(self.plant),
            "CHEMWATCH_LOG_LEVEL": "INFO",
            "CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
            "CHEMWATCH_KAFKA__PARTITIONS": str(self.partitions),
            "CHEMWATCH_KAFKA__READINGS_TOPIC": n.topic("readings"),
            "CHEMWATCH_KAFKA__DLQ_TOPIC": n.topic("readings.dlq"),
            "CHEMWATCH_KAFKA__CONDITIONS_TOPIC": n.topic("conditions"),
            "CHEMWATCH_KAFKA__ALARMS_TOPIC": n.topic("alarms"),
            "CHEMWATCH_MQTT__HOST": s.mqtt.host,
            "CHEMWATCH_MQTT__PORT": str(s.mqtt.port),
            "CHEMWATCH_MQTT__TOPIC_PREFIX": n.prefix,
            "CHEMWATCH_DATABASE__HOST": s.database.host,
            "CHEMWATCH_DATABASE__PORT": str(s.database.port),
            "CHEMWATCH_DATABASE__DBNAME": s.database.dbname,
            "CHEMWATCH_DATABASE__USER": s.database.user,
            "CHEMWATCH_DATABASE__PASSWORD": s.database.password.get_secret_value(),
            "CHEMWATCH_DATABASE__DB_SCHEMA": n.schema,
            "CHEMWATCH_INGEST__SHARE_GROUP": f"{n.tag}-share",
            "CHEMWATCH_DETECTORS__GROUP_ID": f"{n.tag}-detectors",
            "CHEMWATCH_ALERTING__GROUP_ID": f"{n.tag}-alerting",
            # Probes raise an alarm every second or so on purpose: not chattering (that
            # would shelve them). They are a flood of the probe console, handled as the
            # default settings handle one (it opens in the first seconds and stays open).
            "CHEMWATCH_ALERTING__CHATTER_ACTIVATIONS": str(10**9),
            "CHEMWATCH_ALERTING__USERS": json.dumps(
                [{"name": "e2e-bench", "token": self.token, "role": "viewer"}]
            ),
        }

    def prepare(self) -> None:
        """Migrate the private schema and create the private topics."""
        migrate(self.database)
        kafka = self.settings.kafka.model_copy(update={"partitions": self.partitions})
        asyncio.run(kafka_clients.ensure_topics(kafka, *self.names.topics))

    def _start(self, name: str, package: str, extra: dict[str, str]) -> Process:
        proc = self._spawn(name, package, extra, free_port())
        self.processes.append(proc)
        return proc

    def _spawn(self, name: str, package: str, extra: dict[str, str], port: int) -> Process:
        log_path = self.logs / f"{name}.log"
        env = self.env() | {"CHEMWATCH_HTTP__PORT": str(port)} | extra
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", package],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return Process(name, popen, log_path, port, package, extra)

    def crash_and_restart(self, name: str, down_s: float) -> tuple[float, float]:
        """SIGKILL ``name``, as a crash would, and start it again ``down_s`` later on the
        same port, as a supervisor would; returns the wall times of the kill and the
        restart."""
        i = next(k for k, p in enumerate(self.processes) if p.name == name)
        old = self.processes[i]
        old.popen.kill()
        killed_at = time.time()
        old.popen.wait()
        time.sleep(down_s)
        self.processes[i] = self._spawn(name, old.package, old.extra, old.port)
        return killed_at, time.time()

    def start(self, timeout_s: float = 180) -> None:
        """Start alerting, the workers and the bridges; return once each is ready."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._start("alerting", "alerting", {})
        for i in range(self.workers):
            # static members: a restarted worker (--kill-worker) takes its partitions back
            instance = {"CHEMWATCH_DETECTORS__GROUP_INSTANCE_ID": f"{self.names.tag}-detectors-{i}"}
            self._start(f"detectors-{i}", "detectors", instance)
        for i in range(self.bridges):
            self._start(f"ingest-{i}", "ingest", {"CHEMWATCH_INGEST__CLIENT_ID": self.bridge_id(i)})
        deadline = time.monotonic() + timeout_s
        for proc in self.processes:
            while not self._ready(proc):
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited at start:\n{proc.log()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} not ready in {timeout_s:g} s")
                time.sleep(0.3)

    def bridge_id(self, i: int) -> str:
        return f"{self.names.tag}-ingest-{i}"

    @staticmethod
    def _ready(proc: Process) -> bool:
        if proc.name.startswith("ingest"):
            return "subscription confirmed" in proc.log()
        try:
            return httpx.get(f"http://127.0.0.1:{proc.port}/healthz", timeout=2).is_success
        except httpx.HTTPError:
            return False

    @property
    def api(self) -> str:
        """Base URL of the alerting API."""
        return f"http://127.0.0.1:{self.by_name('alerting').port}"

    def by_name(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def check_alive(self) -> None:
        """Fail loudly when a service died (its log tail says why)."""
        for proc in self.processes:
            if not proc.alive():
                raise RuntimeError(
                    f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log()[-3000:]}"
                )

    # ------------------------------------------------------------------ tear-down

    def stop(self) -> None:
        """SIGTERM every process (bridges first, so nothing is left half-way), then clean up
        the private schema, topics and MQTT sessions."""
        order = sorted(self.processes, key=lambda p: ("ingest", "detectors", "alerting").index(
            p.name.split("-")[0]))  # fmt: skip
        for proc in order:
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(30)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait()
        for i in range(self.bridges):
            clear_session(self.settings, self.bridge_id(i))
        with contextlib.suppress(Exception):
            asyncio.run(delete_topics(self.settings, *self.names.topics))
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.settings.database.conninfo(), autocommit=True) as conn,
        ):
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.names.schema)
                )
            )
