"""Fault-injection harness: a private stack, one running pipeline, a steady load, a ledger.

Everything a fault test kills is private to it: Mosquitto, Kafka and PostgreSQL run from
a temporary stack home on free ports (started by the project's own stack manager, with
the shared stack's Kafka jars), so killing a broker never disturbs the shared stack
other tests and people use. The pipeline (bridge, detector worker, alerting) runs as
real processes; the load publisher is a persistent-session QoS 1 MQTT client that keeps
its queue across broker restarts, and records every reading it publishes (the ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import yaml
from aiokafka import AIOKafkaConsumer

from chemwatch.ports import free_port
from chemwatch.stack import manager, process
from chemwatch.stack.config import StackSettings, load_stack_settings
from common import mqtt as mqtt_clients
from common.migrate import migrate
from common.settings import BaseProcessSettings, MqttSettings
from tests.fixtures.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
SITE = "faults"
LOAD_UNITS = 4
SENSORS_PER_UNIT = 10
HAZARD_UNIT = "HZ"
HAZARD_SENSORS = 12  # one per fault window at most
NORMAL_GAS = 5.0  # %LEL while nothing happens
HAZARD_GAS = 60.0  # %LEL: above the HH limit (50) by far more than the deadband
# The bridge's MQTT in-flight window: small, so a Kafka outage fills it in seconds.
INFLIGHT_BUDGET = 300


# ---------------------------------------------------------------------- plant


def load_sensor(k: int) -> tuple[str, str]:
    """(unit, sensor) of load sensor ``k``."""
    return f"LU{k // SENSORS_PER_UNIT}", f"LD-{k:03d}"


def hazard_sensor(k: int) -> str:
    return f"HZ-GD-{k:02d}"


def write_plant(path: Path) -> None:
    """Flow sensors carrying the load, and gas detectors that raise one alarm per hazard.

    Flow has no rate-of-change limit; drift is off, so the load itself raises nothing.
    The gas detectors alarm at once (no on/off delay) so a hazard maps onto one alarm.
    """
    units = []
    for u in range(LOAD_UNITS):
        sensors = [
            {
                "id": load_sensor(k)[1],
                "kind": "flow",
                "unit": "m3/h",
                "range": [0, 1000],
                "interval_s": 30,
                "detection": {"drift": False},
            }
            for k in range(u * SENSORS_PER_UNIT, (u + 1) * SENSORS_PER_UNIT)
        ]
        units.append({"id": f"LU{u}", "name": f"load {u}", "kind": "process_unit",
                      "sensors": sensors})  # fmt: skip
    gas = [
        {
            "id": hazard_sensor(k),
            "kind": "gas",
            "substance": "propane",
            "unit": "%LEL",
            "range": [0, 100],
            "limits": {"hh": 50, "deadband": 2},
            "interval_s": 30,
        }
        for k in range(HAZARD_SENSORS)
    ]
    units.append({"id": HAZARD_UNIT, "name": "hazard detectors", "kind": "storage_area",
                  "sensors": gas})  # fmt: skip
    site = {"id": SITE, "name": "fault injection", "enterprise": "-", "region": "-",
            "units": units}  # fmt: skip
    path.write_text(yaml.safe_dump({"name": "fault injection plant", "sites": [site]}))


# ---------------------------------------------------------------------- private stack


class PrivateStack:
    """Mosquitto, Kafka and PostgreSQL on free ports in ``home`` (data kept across restarts)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        libs = home / "kafka" / "libs"
        libs.parent.mkdir(parents=True, exist_ok=True)
        shared_libs = StackSettings().home / "kafka" / "libs"
        if shared_libs.is_dir() and not libs.exists():  # no Maven download
            libs.symlink_to(shared_libs, target_is_directory=True)
        self.config = home / "stack.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "mqtt": {"port": free_port()},
                    "database": {"port": free_port()},
                    "kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}", "partitions": 3},
                    "stack": {
                        "kafka_controller_port": free_port(),
                        "kafka_heap_min": "256m",
                        "kafka_heap_max": "512m",
                    },
                }
            )
        )
        self.stack, self.settings = load_stack_settings(self.config, home)

    def up(self, *names: str) -> None:
        """Start (or restart) the named services (all when none) and wait until healthy."""
        out, err = io.StringIO(), io.StringIO()
        try:
            manager.up(self.stack, self.settings, names or None, out=out, err=err)
        except Exception as exc:
            raise AssertionError(
                f"private stack up {names} failed: {exc}\n{err.getvalue()}"
            ) from None

    def down(self) -> None:
        """Stop everything this home started."""
        with contextlib.suppress(Exception):
            manager.down(self.stack, self.settings, out=io.StringIO(), err=io.StringIO())

    def pid(self, name: str) -> int:
        pid = manager.pids(self.stack, self.settings)[name]
        assert pid is not None, f"private {name} is not running"
        return pid

    def kill(self, name: str) -> None:
        """SIGKILL the daemon and everything it started (its own process group), as a
        power cut or the OOM killer would: PostgreSQL's backends go with the postmaster."""
        pid = self.pid(name)
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while manager.pids(self.stack, self.settings)[name] is not None:
            assert time.monotonic() < deadline, f"{name} survived SIGKILL"
            time.sleep(0.05)
        # the group's other members (backends) must be gone too before a restart
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def sql(self, statement: str) -> None:
        """Run one statement as the cluster's superuser (over the private socket)."""
        from chemwatch.stack.postgres import Postgres

        pg = Postgres(self.stack, self.settings)
        with psycopg.connect(pg._superuser_conninfo(), autocommit=True) as conn:
            conn.execute(statement)


def _group_alive(pgid: int) -> bool:
    process.is_alive(pgid)  # reaps the leader if we started it: a zombie still counts
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------- pipeline


START = "=== harness: start"


class Proc:
    """A ChemWatch service process with its output in a log file (restartable)."""

    def __init__(self, package: str, env: dict[str, str], log: Path) -> None:
        self.package = package
        self.env = env
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, **env: str) -> None:
        """Start (again); ``env`` overrides variables for this run only."""
        with self.log_path.open("ab") as out:
            out.write(f"\n{START} {self.package}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.package],
                cwd=ROOT,
                env=self.env | env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        if self.alive():
            self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Pipeline:
    """Bridge, detector worker and alerting against a private stack."""

    def __init__(self, stack: PrivateStack, plant: Path, logs: Path) -> None:
        s = stack.settings
        self.settings = s
        config = logs / "services.yaml"  # no incident rules: they name the example plant
        config.write_text(yaml.safe_dump({"alerting": {"rules": None}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
        env |= {
            "CHEMWATCH_PLANT": str(plant),
            "CHEMWATCH_MQTT__PORT": str(s.mqtt.port),
            "CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
            "CHEMWATCH_KAFKA__PARTITIONS": "3",
            "CHEMWATCH_DATABASE__PORT": str(s.database.port),
            "CHEMWATCH_HTTP__PORT": "0",
            "CHEMWATCH_INGEST__CLIENT_ID": "faults-bridge",
            # A plain subscription: Mosquitto 2.0.11 does not restore a persistent
            # session's *shared* subscription after a crash (docs/faults.md), so messages
            # published before the bridge resubscribes would be dropped.
            "CHEMWATCH_INGEST__SHARE_GROUP": "",
            "CHEMWATCH_INGEST__INFLIGHT_BUDGET": str(INFLIGHT_BUDGET),
            "CHEMWATCH_CONFIG": str(config),
            # fast checkpoints: a restart replays little, so recovery is short
            "CHEMWATCH_DETECTORS__SNAPSHOT_INTERVAL_S": "1",
        }
        self.env = env
        names = ("ingest", "detectors", "alerting")
        self.procs = {name: Proc(name, env, logs / f"{name}.log") for name in names}

    def __getitem__(self, name: str) -> Proc:
        return self.procs[name]

    def wait_ready(self, timeout: float = 90) -> None:
        wait_until(
            lambda: "subscription confirmed" in self["ingest"].log().rsplit(START, 1)[-1],
            timeout,
            "bridge subscribed",
        )

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if not p.alive()]

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()


# ---------------------------------------------------------------------- load + ledger


@dataclass
class Hazard:
    """A gas release on one detector: readings above HH from ``start_ms`` to ``end_ms``."""

    sensor: str
    start_ms: int
    end_ms: int


class Load:
    """Publishes ``rate`` single readings/s round-robin over the plant's sensors.

    One persistent-session QoS 1 client (session expiry 7 days, clean start off): while
    the broker is down paho keeps every publish queued and resends unacknowledged ones
    after the reconnect, as a real gateway with a store-and-forward queue does. Every
    publish is appended to the ledger (sensor index, ts in ms, value in hundredths).
    """

    def __init__(self, mqtt_settings: MqttSettings, rate: float) -> None:
        self.rate = rate
        self.sensors = [load_sensor(k) for k in range(LOAD_UNITS * SENSORS_PER_UNIT)]
        self.sensors += [(HAZARD_UNIT, hazard_sensor(k)) for k in range(HAZARD_SENSORS)]
        self.names = [s for _, s in self.sensors]
        prefix = f"{mqtt_settings.topic_prefix}/{SITE}"
        self.topics = [f"{prefix}/{u}/{s}" for u, s in self.sensors]
        self.hazards: list[Hazard] = []
        self._lock = threading.Lock()
        self._sensor: list[int] = []
        self._ts: list[int] = []
        self._centi: list[int] = []
        self._stop = threading.Event()
        self.client = mqtt_clients.make_client(mqtt_settings, "faults-load", persistent=True)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)
        mqtt_clients.connect(self.client, mqtt_settings, persistent=True)
        self.client.loop_start()
        wait_until(self.client.is_connected, 30, "load publisher connected")
        self.t0_ms = int(time.time() * 1000)
        self._thread = threading.Thread(target=self._run, name="faults-load", daemon=True)
        self._thread.start()

    @property
    def sent(self) -> int:
        return len(self._ts)

    def _value(self, seq: int, sensor: int, ts: int) -> int:
        name = self.names[sensor]
        if name.startswith("HZ-"):
            for h in self.hazards:
                if h.sensor == name and h.start_ms <= ts < h.end_ms:
                    return round(HAZARD_GAS * 100)
            return round(NORMAL_GAS * 100)
        return 10_000 + seq % 997  # 100.00 .. 109.96 m3/h

    def _run(self) -> None:
        n = len(self.sensors)
        step_ms = 1000 / self.rate
        seq = 0
        while not self._stop.is_set():
            due = int((time.time() * 1000 - self.t0_ms) / step_ms)
            if seq >= due:
                time.sleep(0.005)
                continue
            with self._lock:
                for s in range(seq, due):
                    k = s % n
                    # ts distinct per sensor: consecutive readings of a sensor are n steps apart
                    ts = self.t0_ms + int(s * step_ms)
                    centi = self._value(s, k, ts)
                    self.client.publish(
                        self.topics[k], f'{{"ts":{ts},"value":{centi / 100}}}', qos=1
                    )
                    self._sensor.append(k)
                    self._ts.append(ts)
                    self._centi.append(centi)
            seq = due

    def hazard(self, sensor: str, after_s: float, duration_s: float) -> Hazard:
        """Schedule a release on ``sensor`` starting ``after_s`` from now."""
        start = int(time.time() * 1000 + after_s * 1000)
        h = Hazard(sensor, start, start + int(duration_s * 1000))
        self.hazards.append(h)
        return h

    def mark(self) -> tuple[int, int]:
        """(readings published so far, ts of the last one): a cut in the ledger."""
        with self._lock:
            return len(self._ts), (self._ts[-1] if self._ts else 0)

    def expected(self, first: int, upto: int) -> dict[str, tuple[int, int]]:
        """Per sensor: (count, sum of values in hundredths) of readings ``first:upto``."""
        with self._lock:
            s = np.array(self._sensor[first:upto], np.int64)
            c = np.array(self._centi[first:upto], np.int64)
        n = len(self.sensors)
        counts = np.bincount(s, minlength=n)
        sums = np.bincount(s, weights=c, minlength=n)
        return {
            self.names[k]: (int(counts[k]), round(float(sums[k]))) for k in range(n) if counts[k]
        }

    def published(self, first: int, upto: int) -> set[tuple[str, int]]:
        """(sensor, ts in ms) of readings ``first:upto``."""
        with self._lock:
            pairs = zip(self._sensor[first:upto], self._ts[first:upto], strict=True)
            return {(self.names[k], t) for k, t in pairs}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------------- checks


# readings with after < time <= last (ms since the epoch)
WINDOW = "time > to_timestamp(%s / 1000.0) AND time <= to_timestamp(%s / 1000.0)"


class Ledger:
    """Compare what the load published with what the private database holds."""

    def __init__(self, settings: BaseProcessSettings) -> None:
        self.conninfo = settings.database.conninfo() + " connect_timeout=3"

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                return conn.execute(query, params).fetchall()
        except psycopg.Error:
            return []  # the database is down or read-only right now: not there yet

    def count(self, after_ms: int, last_ms: int) -> int:
        """Readings stored with after_ms < ts <= last_ms (-1: database unreachable)."""
        rows = self._rows(f"SELECT count(*) FROM readings WHERE {WINDOW}", (after_ms, last_ms))
        return int(rows[0][0]) if rows else -1

    def totals(self, after_ms: int, last_ms: int) -> dict[str, tuple[int, int]]:
        """Per sensor: (count, sum of values in hundredths) stored in the window."""
        rows = self._rows(
            "SELECT sensor_id, count(*), sum(round(value * 100))::bigint FROM readings"
            f" WHERE {WINDOW} GROUP BY sensor_id",
            (after_ms, last_ms),
        )
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def stored(self, after_ms: int, last_ms: int) -> set[tuple[str, int]]:
        """(sensor, ts in ms) of every reading stored in the window."""
        rows = self._rows(
            "SELECT sensor_id, (extract(epoch FROM time) * 1000)::bigint FROM readings"
            f" WHERE {WINDOW}",
            (after_ms, last_ms),
        )
        return {(str(r[0]), int(r[1])) for r in rows}

    def anomalies(self, sensor: str) -> list[tuple[str, str, str]]:
        """(event_id, state, condition) of every transition stored for ``sensor``."""
        return [
            (str(r[0]), str(r[1]), str(r[2]))
            for r in self._rows(
                "SELECT event_id, state, condition FROM anomalies WHERE sensor_id = %s"
                " ORDER BY time",
                (sensor,),
            )
        ]

    def journal(self, alarm_prefix: str) -> list[tuple[str, str]]:
        """(action, event_id) of the journal rows of alarms on ``alarm_prefix``."""
        return [
            (str(r[0]), str(r[1]))
            for r in self._rows(
                "SELECT action, event_id FROM alarm_journal WHERE alarm_id LIKE %s ORDER BY id",
                (alarm_prefix + ":%",),
            )
        ]


def diff(expected: dict[str, tuple[int, int]], found: dict[str, tuple[int, int]]) -> list[str]:
    """Sensors whose (count, sum) differ: readings lost, duplicated or altered."""
    return [
        f"{s}: published {expected.get(s)}, stored {found.get(s)}"
        for s in sorted(set(expected) | set(found))
        if expected.get(s) != found.get(s)
    ]


# ---------------------------------------------------------------------- report


@dataclass
class Report:
    """Recovery time per fault, written as JSON and Markdown after every test."""

    path_md: Path
    path_json: Path
    rate: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows = [r for r in self.rows if r["fault"] != row["fault"]] + [row]
        self.write()
        print(
            f"\nfault {row['fault']}: outage {row['outage_s']:.1f} s, "
            f"recovered in {row['recovery_s']:.1f} s; {row['checked']:,} readings checked"
        )

    def write(self) -> None:
        self.path_md.parent.mkdir(parents=True, exist_ok=True)
        load1, load5, _ = os.getloadavg()
        meta = {
            "rate_readings_s": self.rate,
            "cpus": os.cpu_count(),
            "loadavg_1m": round(load1, 2),
            "loadavg_5m": round(load5, 2),
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.path_json.write_text(json.dumps({"meta": meta, "faults": self.rows}, indent=2))
        lines = [
            "# Fault injection: recovery times",
            "",
            f"Load {self.rate:.0f} readings/s (QoS 1 singles), {meta['cpus']} CPUs, "
            f"load average {load1:.2f} / {load5:.2f} (1 / 5 min) at {meta['written_at']}.",
            "Recovery = from the restart (or SIGCONT, or writes allowed again) until every",
            "reading published before that moment is in the database.",
            "",
            "| fault | outage s | restart s | recovery s | backlog at restart"
            " | readings checked | lost | hazard alarm |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r['fault']} | {r['outage_s']:.1f} | {r['restart_s']:.1f} | "
                f"{r['recovery_s']:.1f} | "
                f"{r['backlog']:,} | {r['checked']:,} | {r.get('lost', 0)} | {r['hazard']} |"
            )
        self.path_md.write_text("\n".join(lines) + "\n")


def alarm_changes(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record on the ``alarms`` topic so far (JSON values)."""
    return asyncio.run(_alarm_changes(bootstrap, topic))


async def _alarm_changes(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += [json.loads(r.value) for r in records]
        parts = list(consumer.assignment())
        ends = await consumer.end_offsets(parts)  # read up to here
        while time.monotonic() < deadline:
            if all([await consumer.position(tp) >= ends[tp] for tp in parts]):
                break
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out += [json.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return out


# ---------------------------------------------------------------------- one fault


@contextlib.contextmanager
def loaded_pipeline(
    base: Path, rate: float
) -> Iterator[tuple[PrivateStack, Pipeline, Load, Ledger]]:
    """A private stack, the whole pipeline on a generated plant and ``rate`` readings/s
    of load, running once the first readings are stored; all stopped on the way out."""
    stack = PrivateStack(base / "stack")
    pipeline = load = None
    try:
        stack.up()  # inside: a service that fails to start must not leave the others up
        plant = base / "plant.yaml"
        write_plant(plant)
        migrate(stack.settings.database)
        pipeline = Pipeline(stack, plant, base)
        pipeline.wait_ready()
        load = Load(stack.settings.mqtt, rate)
        ledger = Ledger(stack.settings)
        wait_until(lambda: ledger.count(0, load.mark()[1]) > 0, 90, "the first readings stored")
        yield stack, pipeline, load, ledger
    finally:
        if load is not None:
            load.close()
        if pipeline is not None:
            pipeline.stop()
        stack.down()


@dataclass
class Rig:
    """Everything a fault test needs: stack, pipeline, load, ledger, report."""

    stack: PrivateStack
    pipeline: Pipeline
    load: Load
    ledger: Ledger
    report: Report
    hazards_used: int = 0
    checked: tuple[int, int] = (0, 0)  # (readings, ts of the last) checked so far

    def next_hazard_sensor(self) -> str:
        assert self.hazards_used < HAZARD_SENSORS, "more fault windows than hazard sensors"
        self.hazards_used += 1
        return hazard_sensor(self.hazards_used - 1)

    def fault(
        self,
        name: str,
        inject: Callable[[], None],
        restore: Callable[[], None],
        outage_s: float,
        recovery_timeout_s: float = 90,
        may_lose_s: float = 0.0,
    ) -> dict[str, Any]:
        """Inject a fault under load with a hazard in flight, restore, and check the ledger.

        The hazard (2 s of gas above HH) starts 1 s before the fault, so its readings
        and its condition event are in the pipeline when the fault hits. Returns the
        report row; raises AssertionError naming what was lost or duplicated.
        ``may_lose_s`` tolerates (and reports) the loss of readings published at most
        that long before the fault, and nothing else (see the Mosquitto test).
        """
        for dead in self.pipeline.dead():  # an earlier fault's casualty: not this test's
            self.pipeline[dead].start()
            self.pipeline.wait_ready()
        # Start from a steady state: everything published so far is stored. Each fault
        # checks the readings since the previous check, so one fault's loss does not
        # fail every later test as well.
        first, after = self.checked
        upto, last_ts = self.load.mark()
        wait_until(
            lambda: self.ledger.count(after, last_ts) >= upto - first,
            90,
            f"{name}: caught up before the fault",
        )
        hazard = self.load.hazard(self.next_hazard_sensor(), after_s=0, duration_s=2.0)
        time.sleep(1.0)
        fault_ms = int(time.time() * 1000)
        injected = time.monotonic()
        inject()
        time.sleep(outage_s)
        started = time.monotonic()
        outage_s = started - injected  # what really passed (inject may take its time)
        restore()
        restart_s = time.monotonic() - started
        upto, last_ts = self.load.mark()
        self.checked = (upto, last_ts)
        want = upto - first
        stored = self.ledger.count(after, last_ts)
        backlog = want - stored if stored >= 0 else want  # database down: all of it
        lost, recovery_s = self._recover(name, first, upto, after, last_ts, fault_ms,
                                         may_lose_s, started, recovery_timeout_s)  # fmt: skip
        lost_detail: dict[str, Any] = {}
        if lost:  # only readings of the allowed window are missing; nothing else
            stored_set = self.ledger.stored(after, last_ts)
            assert stored_set == self.load.published(first, upto) - set(lost)
            # where they were lost: published when, relative to the fault, and did the
            # bridge get them into Kafka (then the loss is downstream of MQTT)?
            rel = sorted((ts - fault_ms) / 1000 for _, ts in lost)
            lost_detail = {
                "lost_published_s": [round(rel[0], 3), round(rel[-1], 3)],
                "lost_in_kafka": missing_in_kafka(self.pipeline.settings, set(lost)),
            }
        else:
            problems = diff(self.load.expected(first, upto), self.ledger.totals(after, last_ts))
            assert not problems, f"{len(problems)} sensors differ:\n" + "\n".join(problems[:20])
        self.assert_alive(name)
        self.check_hazard(hazard)
        self.assert_alive(name)
        row = {
            "fault": name,
            "outage_s": round(outage_s, 1),
            "restart_s": round(restart_s, 2),
            "recovery_s": round(recovery_s, 2),
            "backlog": backlog,
            "checked": want,
            "hazard": f"{hazard.sensor}: 1 alarm",
            "lost": len(lost),
        } | lost_detail
        self.report.add(**row)
        return row

    def _recover(
        self, name: str, first: int, upto: int, after: int, last_ts: int, fault_ms: int,
        may_lose_s: float, started: float, timeout_s: float,
    ) -> tuple[list[tuple[str, int]], float]:  # fmt: skip
        """Wait until the readings ``first:upto`` are stored; return (readings lost within
        the allowed window, recovery time). Fails naming the missing readings."""
        deadline = time.monotonic() + timeout_s
        last_count, still_since = -2, time.monotonic()
        while True:
            self.assert_alive(name)
            count = self.ledger.count(after, last_ts)
            now = time.monotonic()
            if count >= upto - first:
                return [], now - started
            if count != last_count:
                last_count, still_since = count, now
            elif may_lose_s and count >= 0 and now - still_since > 5:
                missing = self._missing(first, upto, after, last_ts)
                if all(fault_ms - may_lose_s * 1000 <= ts <= fault_ms for _, ts in missing):
                    return missing, still_since - started
            if now > deadline:
                missing = self._missing(first, upto, after, last_ts)
                in_kafka = missing_in_kafka(self.pipeline.settings, set(missing))
                rel = [(m[1] - fault_ms) / 1000 for m in missing]
                span = f"{rel[0]:+.2f} s .. {rel[-1]:+.2f} s" if missing else "-"
                raise AssertionError(
                    f"{name}: {len(missing)} of the {upto - first:,} readings published before"
                    f" the restart not stored after {timeout_s} s ({in_kafka} of them on the"
                    f" Kafka readings topic), published {span} from the fault: {missing[:5]}"
                )
            time.sleep(0.1)

    def _missing(self, first: int, upto: int, after: int, last_ts: int) -> list[tuple[str, int]]:
        published = self.load.published(first, upto)
        return sorted(published - self.ledger.stored(after, last_ts), key=lambda m: m[1])

    def assert_alive(self, fault: str) -> None:
        """No service of the pipeline died (a crash is a failure even if data survived)."""
        dead = self.pipeline.dead()
        assert not dead, f"{fault}: {dead} died:\n" + "\n".join(
            self.pipeline[d].log()[-3000:] for d in dead
        )

    def check_hazard(self, hazard: Hazard, timeout_s: float = 60) -> None:
        """The hazard raised one condition occurrence and one alarm (once on Kafka too)."""
        sensor = hazard.sensor
        wait_until(
            lambda: (
                time.time() * 1000 > hazard.end_ms + 500
                and {s for _, s, _ in self.ledger.anomalies(sensor)} == {"active", "cleared"}
            ),
            timeout_s,
            f"the hazard on {sensor} raised and cleared",
        )
        anomalies = self.ledger.anomalies(sensor)
        states = sorted(s for _, s, _ in anomalies)
        assert states == ["active", "cleared"], f"{sensor}: transitions {anomalies}"
        active_id = next(e for e, s, _ in anomalies if s == "active")
        wait_until(
            lambda: [a for a, _ in self.ledger.journal(sensor) if a == "cleared"],
            timeout_s,
            f"alerting to apply the clear of {sensor}",
        )
        journal = self.ledger.journal(sensor)
        actions = sorted(a for a, _ in journal)
        assert actions == ["active", "cleared"], f"{sensor}: journal {journal}"
        s = self.pipeline.settings
        announced = wait_until(
            lambda: [
                c
                for c in alarm_changes(s.kafka.bootstrap_servers, s.kafka.alarms_topic)
                if c.get("kind") == "alarm" and c.get("event_id") == active_id
            ],
            timeout_s,
            f"the alarm of {sensor} on the alarms topic",
            every=1.0,
        )
        # the relay is at least once by design (consumers dedupe on change_id)
        ids = {c["change_id"] for c in announced}
        assert len(ids) == 1, f"{sensor}: activation announced as {len(ids)} changes: {ids}"


def missing_in_kafka(settings: BaseProcessSettings, missing: set[tuple[str, int]]) -> int:
    """How many of ``missing`` (sensor, ts ms) made it to the Kafka readings topic."""
    from tests.ingest.test_delivery import collect

    found = collect(settings.kafka.bootstrap_servers, settings.kafka.readings_topic, 10**9, 20)
    return len(missing & {(s, ts // 1_000_000) for s, ts in found})
