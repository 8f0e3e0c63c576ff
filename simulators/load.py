"""``chemwatch loadgen``: N sensors at R readings/s in total, over several processes.

Each worker process owns whole units of the sensors (one gateway per unit) and
publishes its share of ``R`` in proportion to its sensors, so every sensor reports at
the same interval. The schedule is fixed: reading ``s`` of a worker is due at ``start +
s / rate`` and carries that time as its timestamp, so timestamps are exact and distinct
per sensor. A worker that cannot keep up publishes the backlog as fast as it can and
reports how far it fell behind. The ledger holds, per sensor, the count and two
order-independent checksums (sum of timestamps in ms, sum of values in hundredths)
that anyone can recompute from the ``readings`` table to prove nothing was lost.

Synthetic sensors are ``LOAD-000000`` ... in site ``load``, units of 100 sensors;
``--write-plant`` writes the matching registry so ingest and detectors accept them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

from common import mqtt as mqtt_clients
from common.cli import add_common_arguments
from common.process import guarded, settings_from_args
from common.settings import MqttSettings
from simulators.load_payloads import BatchRenderer, SingleRenderer
from simulators.settings import SimulatorSettings

SITE = "load"
PER_UNIT = 100
# A worker publishes at most once per tick: each wake-up costs far more CPU (cold
# caches, numpy call overhead) than the messages it sends, and a gateway batches anyway.
TICK_S = 0.01
MQTT_311 = MQTTProtocolVersion.MQTTv311


def sensor_id(k: int) -> str:
    return f"LOAD-{k:06d}"


def unit_id(k: int) -> str:
    return f"LU{k // PER_UNIT:04d}"


def share(sensors: int, workers: int, worker: int) -> list[int]:
    """The sensors one worker publishes: whole units, dealt round-robin.

    One worker per unit, like one gateway per unit in a plant, so a gateway batch holds
    one unit's readings (dealt sensor by sensor, every batch would span several units
    and split into messages of 100 / workers readings).
    """
    units = range(worker, -(-sensors // PER_UNIT), workers)
    return [k for u in units for k in range(u * PER_UNIT, min((u + 1) * PER_UNIT, sensors))]


def synthetic_plant(n: int, rate: float) -> dict[str, Any]:
    """A registry document for ``n`` load sensors reporting at ``rate`` in total."""
    interval = max(n / rate, 0.001)
    units = []
    for u in range(0, n, PER_UNIT):
        sensors = [
            {"id": sensor_id(k), "kind": "pressure", "unit": "bar(g)", "range": [0, 100],
             "interval_s": round(interval, 6)}
            for k in range(u, min(u + PER_UNIT, n))
        ]  # fmt: skip
        units.append({"id": unit_id(u), "name": f"load unit {u // PER_UNIT}",
                      "kind": "process_unit", "sensors": sensors})  # fmt: skip
    site = {"id": SITE, "name": "load test", "enterprise": "-", "region": "-", "units": units}
    return {"name": f"load test plant ({n} sensors)", "sites": [site]}


@dataclass(frozen=True, slots=True)
class Job:
    worker: int
    workers: int
    sensors: int
    rate: float  # this worker's readings/s
    duration_s: float
    start_at: float  # epoch seconds, shared by all workers
    batch: int  # readings per MQTT message (1 = JSON singles)
    qos: int
    mqtt: MqttSettings
    client_id: str


def value_of(seq: int) -> float:
    """The value of reading ``seq`` (the ledger sums it in hundredths: ``seq % 10_000``)."""
    return (seq % 10_000) / 100


class Ledger:
    """Per sensor of one worker: readings sent, sum of their ts (ms), sum of value x 100."""

    def __init__(self, n: int) -> None:
        self.count = np.zeros(n, np.int64)
        self.ts_sum = np.zeros(n, np.int64)
        self.centi_sum = np.zeros(n, np.int64)

    def add(
        self, seqs: np.ndarray, start_ms: float, rate: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Book readings ``seqs``; return their sensor index, ts (ms) and value x 100.

        Reading ``seq`` belongs to sensor ``seq % n`` and is due at ``start + seq /
        rate``; the arithmetic is Python's per-reading formula, element-wise.
        """
        j = seqs % len(self.count)
        ts = (start_ms + seqs * 1000 / rate).astype(np.int64)
        centi = seqs % 10_000
        if len(j) <= len(self.count):  # each sensor once (a window of at most n)
            self.count[j] += 1
            self.ts_sum[j] += ts
            self.centi_sum[j] += centi
        else:  # a backlog: sensors repeat, and exact integer sums need add.at
            np.add.at(self.count, j, 1)
            np.add.at(self.ts_sum, j, ts)
            np.add.at(self.centi_sum, j, centi)
        return j, ts, centi

    def as_dict(self, ids: list[str]) -> dict[str, list[int]]:
        """``{sensor: [count, sum_ts_ms, sum_value_centi]}``, the form ``verify`` reads."""
        rows = zip(self.count.tolist(), self.ts_sum.tolist(), self.centi_sum.tolist(), strict=True)
        return {sid: list(row) for sid, row in zip(ids, rows, strict=True)}


def boundary(seq: int, units_at: np.ndarray, n: int, *, after: bool = False) -> int:
    """The last reading number at or before ``seq`` (``after``: the first one after it)
    where a unit's readings begin; reading ``s`` is of the sensor ``s % n``."""
    r = seq % n
    if after:
        i = int(np.searchsorted(units_at, r, side="right"))
        return seq - r + (int(units_at[i]) if i < len(units_at) else n)
    return seq - r + int(units_at[np.searchsorted(units_at, r, side="right") - 1])


def _by_unit(units: np.ndarray) -> list[np.ndarray]:
    """Positions of each unit's readings, in order (a stable sort keeps reading order)."""
    if (units == units[0]).all():
        return [np.arange(len(units))]  # the common window: one unit
    order = np.argsort(units, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(units[order])) + 1)


class Link:
    """A paho client driven from the generator's own thread (no network thread).

    With paho's thread, every publish wakes that thread through a socket pair and every
    PUBACK wakes it again. At 400 messages/s a process spent ~0.12 cores there, ~300 µs
    a message, mostly in waking up with cold caches. Driven from here, ``publish``
    writes to the socket at once, and the PUBACKs that came meanwhile are read in bulk
    whenever the generator waits anyway.
    """

    RETRY_S = 0.5

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client

    def connect(self, deadline: float) -> None:
        """Connect (``common.mqtt.connect`` done), retrying until ``deadline`` (monotonic)."""
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise ConnectionError("load generator: no MQTT connection within 60 s")
            try:
                self.client.reconnect()
            except OSError:
                time.sleep(self.RETRY_S)
                continue
            while self.client.loop(timeout=0.05) == MQTTErrorCode.MQTT_ERR_SUCCESS:
                if self.client.is_connected() or time.monotonic() > deadline:
                    break

    def wait(self, seconds: float) -> None:
        """Wait ``seconds``, reading acks and keeping the connection alive meanwhile."""
        until = time.monotonic() + max(seconds, 0.0)
        while True:
            self._service()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, self.RETRY_S))

    def flush(self, infos: list[mqtt.MQTTMessageInfo], deadline: float) -> None:
        """Wait until every message in ``infos`` is acknowledged (or ``deadline``)."""
        for info in infos:
            while not info.is_published() and time.monotonic() < deadline:
                self._service()
                time.sleep(0.005)

    def _service(self) -> None:
        rc = self.client.loop(timeout=0)
        if rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            return
        try:  # the connection is gone: paho resends in-flight QoS 1 messages on reconnect
            self.client.reconnect()
        except OSError:
            time.sleep(self.RETRY_S)


def _worker(job: Job, results: Any, progress: Any, start: Any = None) -> None:
    mine = share(job.sensors, job.workers, job.worker)
    prefix = job.mqtt.topic_prefix
    topics = [f"{prefix}/{SITE}/{unit_id(k)}/{sensor_id(k)}" for k in mine]
    unit_topics = [f"{prefix}/{SITE}/{unit_id(k)}" for k in mine]
    ids = [sensor_id(k) for k in mine]
    unit_of = np.array([k // PER_UNIT for k in mine], np.int64)  # per sensor of ours
    # MQTT 3.1.1, as most sensor gateways speak: paho decodes an MQTT 5 PUBACK's reason
    # code and properties into objects, ~80 µs a message here, a third of a publish
    client = mqtt_clients.make_client(
        job.mqtt, f"{job.client_id}-{job.worker}", persistent=False, protocol=MQTT_311
    )
    client.disable_logger()  # paho formats a debug line per packet sent and received
    mqtt_clients.connect(client, job.mqtt, persistent=False)
    link = Link(client)
    link.connect(deadline=time.monotonic() + 60)
    n, total = len(mine), int(job.rate * job.duration_s) if mine else 0
    units_at = np.flatnonzero(np.diff(unit_of, prepend=-1))  # where each unit begins
    book = Ledger(n)
    singles, batches = SingleRenderer(), BatchRenderer(ids)
    start_at = job.start_at
    if start is not None:
        # connected: count ourselves ready and wait for the start time the parent sets
        # once every worker is ready (a busy machine starts processes slowly)
        with start.get_lock():
            start[0] += 1
        while start[1] == 0:
            link.wait(0.005)
        start_at = start[1]
    start_ms = start_at * 1000
    sent, behind, messages = 0, 0.0, 0
    infos: list[mqtt.MQTTMessageInfo] = []
    link.wait(start_at - time.time())
    last_send = 0.0
    while sent < total:
        now = time.time()
        if now < last_send + TICK_S:
            link.wait(last_send + TICK_S - now)
            continue
        due = min(total, int((now - start_at) * job.rate) + 1)
        # a gateway sends a unit's readings together: send up to the last unit boundary
        # that is due (or the rest), else wait for the next one
        upto = due if job.batch == 1 or due == total else boundary(due, units_at, n)
        if upto <= sent:  # wait until the next unit boundary's reading is due
            nxt = sent + 1 if job.batch == 1 else boundary(sent, units_at, n, after=True)
            link.wait(min(0.05, start_at + (nxt - 1) / job.rate - now))
            continue
        due, last_send = upto, now
        behind = max(behind, (due - sent) / job.rate)
        # the readings sent..due-1 as arrays: the generator's own CPU is taken from the
        # pipeline it measures when both run on one machine, so no Python per reading
        # (single readings: one publish per reading, as each is its own message)
        j, ts, centi = book.add(np.arange(sent, due), start_ms, job.rate)
        before = len(infos)
        if job.batch == 1:
            for t, payload in zip(j.tolist(), singles.render(ts, centi), strict=True):
                infos.append(client.publish(topics[t], payload, job.qos))
        else:
            entries = batches.entries(j, ts, centi)
            for rows in _by_unit(unit_of[j]):
                topic = unit_topics[int(j[rows[0]])]
                for i in range(0, len(rows), job.batch):
                    body = batches.message(entries[rows[i : i + job.batch]])
                    infos.append(client.publish(topic, body, job.qos))
        messages += len(infos) - before
        sent = due
        progress.value = sent  # read by the parent's progress line
        if job.qos and len(infos) > 20_000:
            infos = [i for i in infos if not i.is_published()]
    if job.qos:
        link.flush(infos, deadline=time.monotonic() + 60)
    end = time.time()
    ledger = book.as_dict(ids)
    client.disconnect()
    results.put({"worker": job.worker, "sent": sent, "end": end, "behind_s": behind,
                 "messages": messages, "ledger": ledger})  # fmt: skip


def run_load(
    mqtt: MqttSettings, sensors: int, rate: float, processes: int, duration_s: float,
    batch: int = 1, qos: int = 0, client_id: str = "chemwatch-loadgen",
    show_progress: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Run the workers; return achieved rate, fall-behind and the merged ledger.

    The first reading is due 0.2 s after every worker is connected, so a machine slow
    to start processes does not make the workers begin behind schedule.
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    # [workers ready, start time]: the first reading is due once every worker is ready
    start = ctx.Array("d", [0.0, 0.0])
    start_at = time.time() + 1.5 + 0.3 * processes  # a first guess, for the Jobs
    # a worker's rate is in proportion to its sensors: every sensor reports as often
    jobs = [
        Job(w, processes, sensors, rate * len(share(sensors, processes, w)) / sensors,
            duration_s, start_at, batch, qos, mqtt,
            client_id)
        for w in range(processes)
    ]  # fmt: skip
    counters = [ctx.Value("q", 0, lock=False) for _ in jobs]
    procs = [
        ctx.Process(target=_worker, args=(j, results, c, start), daemon=True)
        for j, c in zip(jobs, counters, strict=True)
    ]
    for p in procs:
        p.start()
    ready_by = time.monotonic() + 120
    while start[0] < processes:
        if time.monotonic() > ready_by or not any(p.is_alive() for p in procs):
            raise RuntimeError(f"load workers not ready: {int(start[0])} of {processes}")
        time.sleep(0.01)
    start_at = time.time() + 0.2
    start[1] = start_at
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + duration_s + 120
    while len(reports) < len(procs):
        try:
            reports.append(results.get(timeout=2))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise
        if show_progress and time.time() > start_at:
            elapsed = time.time() - start_at
            done = sum(c.value for c in counters)
            print(f"[{elapsed:5.1f} s] sent {done:,} ({done / elapsed:,.0f}/s of {rate:,.0f}/s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    for p in procs:
        p.join(30)
    sent = sum(r["sent"] for r in reports)
    elapsed = max(r["end"] for r in reports) - start_at
    ledger: dict[str, list[int]] = {}
    for r in reports:
        ledger |= r["ledger"]
    achieved = sent / elapsed if elapsed > 0 else 0.0
    return {
        "sensors": sensors,
        "processes": processes,
        "requested_rate": rate,
        "achieved_rate": round(achieved, 1),
        "deviation_pct": round(100 * (achieved - rate) / rate, 2),
        "sent": sent,
        "messages": sum(r.get("messages", 0) for r in reports),  # MQTT messages published
        "start_at": start_at,  # epoch s: the first reading's timestamp
        "elapsed_s": round(elapsed, 3),
        "max_fall_behind_s": round(max(r["behind_s"] for r in reports), 3),
        "qos": qos,
        "batch": batch,
        "ledger": ledger,
    }


def verify(ledger: dict[str, list[int]], rows: list[tuple[str, int, int, int]]) -> list[str]:
    """Compare a ledger with ``(sensor, count, sum_ts_ms, sum_value_centi)`` rows read
    downstream; return the sensors that differ (empty = nothing lost or altered)."""
    seen = {r[0]: list(r[1:]) for r in rows}
    return sorted(s for s, want in ledger.items() if seen.get(s) != want)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``loadgen``."""
    p = sub.add_parser("loadgen", help="publish N sensors at R readings/s (load test)",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_common_arguments(p)
    p.add_argument("--sensors", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=20_000, help="readings/s in total")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--duration", type=float, default=30, metavar="S")
    p.add_argument("--batch", type=int, default=1, help="readings per message (1 = singles)")
    p.add_argument("--qos", type=int, choices=[0, 1], default=0)
    p.add_argument("--ledger", type=Path, help="write the per-sensor ledger (JSON) here")
    p.add_argument("--write-plant", type=Path, help="write the matching plant registry and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    def main() -> int:
        if args.write_plant:
            doc = synthetic_plant(args.sensors, args.rate)
            args.write_plant.write_text(yaml.safe_dump(doc, sort_keys=False))
            print(f"wrote {args.write_plant} ({args.sensors} sensors)")
            return 0
        settings = settings_from_args(SimulatorSettings, args)
        result = run_load(settings.mqtt, args.sensors, args.rate, args.processes,
                          args.duration, args.batch, args.qos,
                          show_progress=not args.json)  # fmt: skip
        ledger = result.pop("ledger")
        if args.ledger:
            args.ledger.write_text(json.dumps(ledger))
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{result['sent']:,} readings in {result['elapsed_s']:.1f} s: "
                f"{result['achieved_rate']:,.0f}/s of {args.rate:,.0f}/s requested "
                f"({result['deviation_pct']:+.2f} %), max fall-behind "
                f"{result['max_fall_behind_s']:.3f} s, {args.processes} processes, "
                f"QoS {args.qos}, {args.batch} reading(s)/message",
                file=sys.stdout,
            )
        return 0

    return guarded(main)
