"""CPU, RSS and lag of every process over time, sampled from a background thread.

CPU is user + system seconds from the kernel (psutil); per window it is reported as
CPU seconds / wall seconds (1.0 = one core busy). RSS is the resident set. Lag comes from
the services' own /metrics: the detector workers' Kafka lag (records = ingest batches
between a partition's end and the worker's position), their source lag (wall clock now
minus the source time of the newest reading processed) and the alerting service's
Kafka lag on ``conditions``.

The infrastructure (Mosquitto, Kafka, PostgreSQL) is shared with whoever else uses the
stack, so its CPU counts their work too; the report says so.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from chemwatch.e2e.services import Process


@dataclass
class Sample:
    t: float  # wall clock, epoch s
    cpu: dict[str, float]  # cumulative user+sys seconds per process name
    rss: dict[str, int]  # bytes
    lag_records: float  # detector workers' Kafka lag, summed over partitions
    alerting_lag: float  # alerting's Kafka lag on conditions
    # source lag of each detector worker whose /metrics answered (0 before its first write)
    worker_lag_s: dict[str, float]

    @property
    def lag_s(self) -> float:
        """Detector workers' source lag: the largest of those that answered."""
        return max(self.worker_lag_s.values(), default=0.0)


def _listens_on(proc: psutil.Process, port: int) -> bool:
    try:
        return any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                   for c in proc.net_connections("tcp"))  # fmt: skip
    except psutil.Error:
        return False


def infra(ports: dict[str, int]) -> dict[str, list[psutil.Process]]:
    """The stack's Mosquitto, Kafka broker and PostgreSQL (server and its backends),
    found by the ports they listen on: private brokers others start are left out."""
    found: dict[str, list[psutil.Process]] = {name: [] for name in ports}
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        for name, port in ports.items():
            if (name in (proc.info["name"] or "") or name in cmd) and _listens_on(proc, port):
                found[name].append(proc)
                if name == "postgres":
                    found[name] += proc.children()
    return found


def scrape(
    http: httpx.Client, port: int, labels: dict[str, str] | None = None, timeout_s: float = 0.5
) -> dict[str, float]:
    """Sum of the samples per metric name on a /metrics page, of those samples carrying
    ``labels`` when given (empty on failure)."""
    try:
        text = http.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if labels is None or labels.items() <= s.labels.items():
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


class Sampler(threading.Thread):
    """Samples every ``interval_s`` until stopped; ``samples`` grows as it runs."""

    def __init__(
        self, processes: Sequence[Process], ports: dict[str, int], interval_s: float = 1.0
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.processes = processes
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self._stop_event = threading.Event()
        self._handles: dict[int, psutil.Process] = {}  # by PID: a restart brings a new one
        self._infra = infra(ports)
        self._ports = ports
        self._lock = threading.Lock()
        self._books: dict[str, dict[int, float]] = {}  # group -> pid -> last CPU seconds
        # One client for every scrape: ``httpx.get`` builds a client, and with it an SSL
        # context loading the CA bundle, per call. Three scrapes a second took ~0.2
        # cores of this process, CPU the pipeline it measures ran short of.
        self._http = httpx.Client()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)
        self._http.close()

    def run(self) -> None:
        while not self._stop_event.is_set():
            sample = self.sample()
            with self._lock:
                self.samples.append(sample)
                self.samples.sort(key=lambda s: s.t)  # mark() samples from another thread
            self._stop_event.wait(self.interval_s)

    def mark(self) -> None:
        """Take a sample now (step boundaries: CPU over a step needs both ends)."""
        with self._lock:
            self.samples.append(self.sample())
            self.samples.sort(key=lambda s: s.t)

    def sample(self) -> Sample:
        at = time.time()  # taken first: scraping a busy service can take a while
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        # A service restarted during the run (bench e2e --kill-worker) keeps one name: its
        # CPU is that of every process it has been, its RSS the current one's.
        for p in list(self.processes):
            cpu[p.name], rss[p.name] = self._group(p.name, self._handle(p.pid))
        groups: dict[str, list[psutil.Process]] = dict(self._infra)
        if self._infra.get("postgres"):  # backends come and go: the server's children now
            server = self._infra["postgres"][0]
            with contextlib.suppress(psutil.Error):
                groups["postgres"] = [server, *server.children()]
        own_pids = {p.pid for p in self.processes}
        groups["loadgen"] = [c for c in psutil.Process(os.getpid()).children(recursive=True)
                             if c.pid not in own_pids]  # fmt: skip
        for name, procs in groups.items():
            cpu[name], rss[name] = self._group(name, procs)
        lag_records = alerting_lag = 0.0
        worker_lag: dict[str, float] = {}
        for p in list(self.processes):
            metrics = scrape(self._http, p.port)
            if p.name.startswith("detectors") and metrics:
                lag_records += metrics.get("chemwatch_detectors_kafka_lag", 0.0)
                worker_lag[p.name] = metrics.get("chemwatch_detectors_source_lag_seconds", 0.0)
            elif p.name == "alerting":
                alerting_lag = metrics.get("chemwatch_alerting_kafka_lag", 0.0)
        return Sample(at, cpu, rss, lag_records, alerting_lag, worker_lag)

    def _handle(self, pid: int) -> list[psutil.Process]:
        """The process with ``pid``, as a group of one (none once it is gone)."""
        if pid not in self._handles:
            try:
                self._handles[pid] = psutil.Process(pid)
            except psutil.Error:
                return []
        return [self._handles[pid]]

    def _group(self, name: str, procs: list[psutil.Process]) -> tuple[float, int]:
        """Cumulative CPU of a changing set of processes (an exited one keeps its last
        reading, a new one counts from birth) and the current RSS of those alive."""
        book = self._books.setdefault(name, {})
        total_rss = 0
        for proc in procs:
            try:
                t = proc.cpu_times()
                book[proc.pid] = t.user + t.system
                total_rss += proc.memory_info().rss
            except psutil.Error:
                continue
        return sum(book.values()), total_rss

    # ------------------------------------------------------------------ windows

    def window(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in list(self.samples) if t0 <= s.t <= t1]

    def usage(self, t0: float, t1: float) -> dict[str, dict[str, float]]:
        """Per process over [t0, t1]: CPU (cores) and peak RSS (MB) of the samples,
        from the last sample before t0 to the first after t1 (a busy machine samples
        late)."""
        samples = list(self.samples)
        before = [s for s in samples if s.t < t0][-1:]
        after = [s for s in samples if s.t > t1][:1]
        inside = before + self.window(t0, t1) + after
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        wall = last.t - first.t
        out: dict[str, dict[str, float]] = {}
        for name in last.cpu:
            if name not in first.cpu:
                continue
            peak = max(s.rss.get(name, 0) for s in inside)
            out[name] = {
                "cpu_cores": round((last.cpu[name] - first.cpu[name]) / wall, 3),
                "peak_rss_mb": round(peak / 2**20, 1),
            }
        return out

    def lag_series(self) -> list[dict[str, Any]]:
        return [
            {"t": round(s.t, 3), "lag_records": s.lag_records, "lag_s": round(s.lag_s, 3),
             "alerting_lag": s.alerting_lag, "workers_up": len(s.worker_lag_s)}
            for s in list(self.samples)
        ]  # fmt: skip

    def rss_series(self) -> list[dict[str, Any]]:
        return [
            {"t": round(s.t, 3), **{k: round(v / 2**20, 1) for k, v in s.rss.items()}}
            for s in list(self.samples)
        ]
