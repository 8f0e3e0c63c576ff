"""The benchmark's course: configurations (a plant and its services), stepped rates,
the half-rate step, cost growth over sensor counts, and the soak."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chemwatch.e2e import ledger, stats
from chemwatch.e2e.plant import write_plant
from chemwatch.e2e.probes import (
    ConditionReader,
    DbPoller,
    ProbeLog,
    ProbePublisher,
    ReadingsReader,
    SseReader,
    commit_timestamps_on,
    first_error,
    read_alarm_commits,
    read_commit_times,
    stop_all,
)
from chemwatch.e2e.sampler import Sampler, scrape
from chemwatch.e2e.services import Services
from common.settings import BaseProcessSettings
from simulators.load import SITE as LOAD_SITE
from simulators.load import run_load

GATEWAY_BATCH = 100  # readings per MQTT message in batch mode (one gateway, one unit)
SOAK_LAG_BOUND_S = 5.0  # source lag the soak may never exceed
KILL_DOWN_S = 1.0  # --kill-worker: how long the killed worker stays down (a supervisor)
CAUGHT_UP_LAG_S = 2.0  # --kill-worker: every worker's source lag back under this


@dataclass(frozen=True)
class Options:
    mode: str  # "batch" (gateway batches) or "single" (one reading per message)
    rates: tuple[float, ...]  # readings/s (batch) or MQTT messages/s (single)
    step_seconds: float
    drain_seconds: float  # grace after publishing for the ledger to be reached
    sensors: tuple[int, ...]
    bridges: int = 1
    workers: int = 1
    publishers: int = 2
    probes: int = 20
    probe_rate: float = 20.0  # probe publishes/s (half of them activations)
    half_rate: bool = True
    soak_minutes: float = 0.0
    soak_rate: float = 0.0  # 0: half the sustained rate (or the first rate)
    kill_worker: bool = False  # one more step with detector worker 0 killed and restarted
    out: Path = Path("reports/e2e")

    @property
    def batch(self) -> int:
        return GATEWAY_BATCH if self.mode == "batch" else 1


def say(text: str) -> None:
    """Progress on stderr (stdout stays for the summary)."""
    print(f"[e2e {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Config:
    """One plant with its services running, ready to take load."""

    opts: Options
    settings: BaseProcessSettings
    sensors: int
    label: str
    services: Services = field(init=False)
    log: ProbeLog = field(default_factory=ProbeLog)
    exact_db: bool = False
    threads: list[Any] = field(default_factory=list)
    sampler: Sampler | None = None

    def __enter__(self) -> Config:
        logs = self.opts.out / "logs" / self.label
        logs.mkdir(parents=True, exist_ok=True)
        plant = write_plant(logs / "plant.json", self.sensors, self.opts.probes)
        self.services = Services(self.settings, plant, logs, self.opts.bridges, self.opts.workers)
        say(f"{self.label}: starting {self.opts.bridges} bridge(s), {self.opts.workers} "
            f"worker(s), alerting for {self.sensors:,} sensors (logs: {logs})")  # fmt: skip
        try:
            self.services.prepare()
            self.services.start()
            self._start_probes()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_probes(self) -> None:
        s, db = self.services, self.services.database
        self.exact_db = commit_timestamps_on(db)
        # the private topics have as many partitions as the services were told
        kafka = self.settings.kafka.model_copy(update={"partitions": s.partitions})
        conditions = ConditionReader(kafka, s.names.topic("conditions"), self.log)
        readings = ReadingsReader(kafka, s.names.topic("readings"), self.log)
        sse = SseReader(s.api, s.token, self.log)
        mqtt = self.settings.mqtt.model_copy(update={"topic_prefix": s.mqtt_prefix})
        publisher = ProbePublisher(mqtt, f"{s.names.tag}-probe", self.opts.probes,
                                   self.opts.probe_rate, self.log)  # fmt: skip
        self.threads = [conditions, sse, readings]
        if not self.exact_db:
            self.threads.append(DbPoller(db, self.log))
        for t in self.threads:
            t.start()
        conditions.ready.wait(30)
        sse.ready.wait(30)
        readings.ready.wait(30)
        self.threads.append(publisher)
        publisher.start()
        # the chain is live once a probe's alarm came back through all of it
        deadline = time.monotonic() + 120
        while not self.log.alarm:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError("no probe alarm on the live stream within 120 s")
            time.sleep(0.2)
        # Probes published while the services were still starting are queued along the
        # chain; measuring before they drained would time the start-up backlog. Settled:
        # an alarm came back for a probe published after the first one came back.
        live = time.time()
        while not any(self.log.published[k] >= live for k in list(self.log.alarm)):
            self.check()
            if time.monotonic() > deadline + 120:
                raise RuntimeError("probe alarms did not catch up within 120 s")
            time.sleep(0.2)
        method = "from commit timestamps" if self.exact_db else "by polling"
        say(f"{self.label}: pipeline live (probe alarms caught up in {time.time() - live:.1f} s)"
            f"; database latency {method}")  # fmt: skip
        ports = {
            "mosquitto": self.settings.mqtt.port,
            "kafka": int(self.settings.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[1]),
            "postgres": self.settings.database.port,
        }
        self.sampler = Sampler(s.processes, ports, interval_s=1.0)
        self.sampler.start()

    def check(self) -> None:
        self.services.check_alive()
        error = first_error(self.threads)
        if error is not None:
            raise RuntimeError(f"probe thread failed: {error!r}") from error

    def __exit__(self, *_exc: object) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        stop_all(self.threads)
        self.services.stop()

    def errors(self) -> dict[str, int]:
        return {p.name: len(p.error_lines()) for p in self.services.processes}

    # ------------------------------------------------------------------ one step

    def step(self, rate: float, seconds: float, kind: str = "step") -> dict[str, Any]:
        """Publish at ``rate`` for ``seconds``, wait for the ledger, measure."""
        opts, db = self.opts, self.services.database
        self.check()
        say(f"{self.label}: {kind} at {rate:,.0f} {self.unit} for {seconds:g} s")
        mqtt = self.settings.mqtt.model_copy(update={"topic_prefix": self.services.mqtt_prefix})
        assert self.sampler is not None
        self.sampler.mark()
        result = run_load(mqtt, self.sensors, rate, opts.publishers, seconds, opts.batch,
                          qos=1, client_id=f"{self.services.names.tag}-load",
                          show_progress=True)  # fmt: skip
        book = result.pop("ledger")
        t0 = math.floor(result["start_at"] * 1000) / 1000  # the first ts, in whole ms
        t1 = t0 + seconds + 1.0  # every source ts of the step is below this
        # the last PUBACK (the generator returns later: it joins its processes)
        published_at = result["start_at"] + result["elapsed_s"]
        # Each poll counts the step's rows (~0.1 s of a PostgreSQL core per million):
        # polled every 0.25 s it slowed the very drain it timed. With commit timestamps
        # the time the rows were reached is exact whenever we look, so look once a second.
        poll_s = 1.0 if self.exact_db else 0.25
        stored, reached = ledger.wait_for(
            db, t0, t1, result["sent"], deadline=time.time() + opts.drain_seconds, poll_s=poll_s
        )
        if reached and self.exact_db:
            # exact: when the last of the step's rows was committed, not when we looked
            reached = ledger.last_commit(db, t0, t1) or reached
        wrong = ledger.mismatches(db, book, t0, t1) if reached else []
        drain = None if reached is None else max(0.0, reached - published_at)
        end = reached or time.time()
        lost: int | None = len(wrong)  # sensors that differ once everything arrived
        if reached is None:
            # overloaded: a backlog, or a loss? let it drain (the load has stopped), recheck
            say(f"{self.label}: backlog of {result['sent'] - stored:,}; waiting up to "
                f"{3 * opts.drain_seconds:g} s for it to drain before the loss check")  # fmt: skip
            _, late = ledger.wait_for(
                db,
                t0,
                t1,
                result["sent"],
                deadline=time.time() + 3 * opts.drain_seconds,
                poll_s=poll_s,
            )
            lost = len(ledger.mismatches(db, book, t0, t1)) if late else None
        self.sampler.mark()  # CPU up to now: a little past the end, on a busy machine
        if self.exact_db:
            read_commit_times(db, self.log, since=t0 - 1)
        self._await_probes(t0, t0 + seconds, patience_s=max(5.0, opts.drain_seconds))
        if self.exact_db:
            read_alarm_commits(db, self.log)
        usage = self.sampler.usage(t0, end)
        verdict = stats.judge_step(
            result["sent"], stored, len(wrong), drain, stats.drain_limit(seconds),
            rate, result["achieved_rate"],
        )  # fmt: skip
        latency = {
            k: stats.percentiles(v) for k, v in self.log.latencies_ms(t0, t0 + seconds).items()
        }
        e2e_rate = result["sent"] / (end - t0) if reached else stored / (end - t0)
        step = {
            "kind": kind,
            "sensors": self.sensors,
            "mode": opts.mode,
            "requested_rate": rate,
            "published": result["sent"],
            "mqtt_messages": result["messages"],
            "publish_rate": result["achieved_rate"],
            "publish_fall_behind_s": result["max_fall_behind_s"],
            "stored": stored,
            "mismatched_sensors": len(wrong),
            "missing_at_grace": max(0, result["sent"] - stored),
            # sensors not matching the ledger after the backlog drained (None: it did not)
            "sensors_lost": lost,
            "drain_s": None if drain is None else round(drain, 2),
            "e2e_readings_per_s": round(e2e_rate, 1),
            "e2e_mqtt_msgs_per_s": round(e2e_rate * result["messages"] / max(1, result["sent"]), 1),
            "kept_up": verdict.kept_up,
            "verdict": verdict.reason,
            "latency_ms": latency,
            "probes": self.log.counts(t0, t0 + seconds),
            # time between consecutive stages of the probe activations (commit timestamps)
            "stages_ms": {
                k: stats.percentiles(v) for k, v in self.log.stages_ms(t0, t0 + seconds).items()
            },
            "db_latency_method": "commit timestamp" if self.exact_db else "polling (upper bound)",
            "usage": usage,
            "t0": t0,
            "t_end": end,
        }
        alarm = latency["alarm"]
        say(f"{self.label}: {'kept up' if verdict.kept_up else 'did NOT keep up'} "
            f"({verdict.reason}); e2e {e2e_rate:,.0f} readings/s; p99 ms db "
            f"{latency['db']['p99']} condition {latency['condition']['p99']} alarm "
            f"{alarm['p99']}")  # fmt: skip
        return step

    def _await_probes(self, t0: float, t1: float, patience_s: float) -> None:
        """Give the step's last condition events and alarms time to arrive: until every
        activation was seen on both, or ``patience_s`` without progress."""
        last, still = None, time.monotonic()
        while time.monotonic() - still < patience_s:
            c = self.log.counts(t0, t1)
            seen = (c["seen_condition"], c["seen_alarm"], c["seen_db"])
            if seen == (c["probe_activations"],) * 2 + (c["probe_readings"],):
                return
            if seen != last:
                last, still = seen, time.monotonic()
            time.sleep(0.2)

    @property
    def unit(self) -> str:
        return "readings/s" if self.opts.mode == "batch" else "MQTT msgs/s"

    def series(self) -> dict[str, Any]:
        assert self.sampler is not None
        return {"lag": self.sampler.lag_series(), "rss_mb": self.sampler.rss_series()}


# ---------------------------------------------------------------------- the course


def stepped(opts: Options, settings: BaseProcessSettings) -> dict[str, Any]:
    """Stepped rates on the first sensor count until the pipeline falls behind, then
    the half-rate step; returns that configuration's part of the summary."""
    sensors = opts.sensors[0]
    with Config(opts, settings, sensors, f"steps-{sensors}") as cfg:
        steps = []
        for rate in opts.rates:
            steps.append(cfg.step(rate, opts.step_seconds))
            if not steps[-1]["kept_up"]:
                break
        best = stats.sustained([(s["e2e_readings_per_s"], s["kept_up"]) for s in steps])
        observed = max(s["e2e_readings_per_s"] for s in steps)
        half = None
        if opts.half_rate and best > 0:
            # the sustained figure is in readings/s; a single-mode step rate is msgs/s,
            # one reading each, so half of it is the same number either way
            half = cfg.step(round(best / 2), opts.step_seconds, kind="half-rate")
        return {
            "sensors": sensors,
            "steps": steps,
            "half_rate_step": half,
            "sustained_readings_per_s": best,
            "best_observed_readings_per_s": observed,
            "errors": cfg.errors(),
            "state_bytes": ledger.state_bytes(cfg.services.database),
            **cfg.series(),
        }


def cost_growth(opts: Options, settings: BaseProcessSettings, rate: float) -> list[dict[str, Any]]:
    """One step at the same total ``rate`` for every further sensor count."""
    out = []
    for sensors in opts.sensors[1:]:
        with Config(opts, settings, sensors, f"cost-{sensors}") as cfg:
            step = cfg.step(rate, opts.step_seconds, kind="cost")
            worker = step["usage"].get("detectors-0", {})
            out.append({
                "sensors": sensors, "step": step, "errors": cfg.errors(),
                "worker_peak_rss_mb": worker.get("peak_rss_mb"),
                "state_bytes": ledger.state_bytes(cfg.services.database),
            })  # fmt: skip
    return out


def worker_kill(opts: Options, settings: BaseProcessSettings, rate: float) -> dict[str, Any]:
    """One step at ``rate`` in which detector worker 0 is killed (SIGKILL) a third of the
    way in and started again ``KILL_DOWN_S`` later, as a supervisor would. The step's
    ledger shows whether every reading was stored exactly once; ``caught_up_s`` is the
    time from the restart until every worker's source lag was back under
    ``CAUGHT_UP_LAG_S`` while the load ran, or else until the step's last reading was
    stored (None: neither within the step and its drain). ``survivor_rebalances``
    counts the assignments the other workers went through meanwhile (each one stops
    them for a moment)."""
    sensors = opts.sensors[0]
    with Config(opts, settings, sensors, f"kill-{sensors}") as cfg:
        assert cfg.sampler is not None
        times: list[float] = []
        assigned: dict[str, int] = {}  # assignments each worker had logged before the kill
        done = threading.Event()

        def kill_a_third_in() -> None:
            # from the load's first reading at the bridge, not from the call: the
            # generator's processes take a second or so to start publishing
            port = cfg.services.by_name("ingest-0").port
            with httpx.Client() as http:  # one client: each builds an SSL context
                while not _load_arrived(http, port):
                    if done.wait(0.1):
                        return
            if not done.wait(opts.step_seconds / 3):
                assigned.update(_assignments_logged(cfg.services))
                times.extend(cfg.services.crash_and_restart("detectors-0", KILL_DOWN_S))

        killer = threading.Thread(target=kill_a_third_in, name="worker-killer", daemon=True)
        killer.start()
        try:
            step = cfg.step(rate, opts.step_seconds, kind="worker-kill")
        finally:
            done.set()
            killer.join()
        if not times:
            raise RuntimeError("the worker was not killed: the step ended first")
        killed_at, restarted_at = times
        lag_ok = next(
            (s.t for s in cfg.sampler.samples
             if restarted_at < s.t <= step["t_end"] and len(s.worker_lag_s) == opts.workers
             and all(0 < v <= CAUGHT_UP_LAG_S for v in s.worker_lag_s.values())),
            None,
        )  # fmt: skip
        # After the load stops a worker's source lag stays at its last write's: a backlog
        # drained after the last publish is done when the last reading is stored.
        stored_all = step["t_end"] if step["drain_s"] is not None else None
        done_at = min((t for t in (lag_ok, stored_all) if t is not None), default=None)
        caught_up = None if done_at is None else done_at - restarted_at
        after = _assignments_logged(cfg.services)
        survivors = [n for n in after if n != "detectors-0"]
        rebalances = max((after[n] - assigned.get(n, 0) for n in survivors), default=0)
        return {
            "rate": rate,
            "workers": opts.workers,
            "step_seconds": opts.step_seconds,
            "killed_at": killed_at,
            "restarted_at": restarted_at,
            "killed_after_s": round(killed_at - step["t0"], 2),
            "down_s": round(restarted_at - killed_at, 2),
            "caught_up_s": None if caught_up is None else round(caught_up, 1),
            "caught_up_lag_s": CAUGHT_UP_LAG_S,
            "survivor_rebalances": rebalances,
            "step": step,
            "errors": cfg.errors(),
            **cfg.series(),
        }


def _assignments_logged(services: Services) -> dict[str, int]:
    """Partition assignments each detector worker has logged so far."""
    return {p.name: p.log().count("detectors.worker: assigned [")
            for p in services.processes if p.name.startswith("detectors")}  # fmt: skip


def _load_arrived(http: httpx.Client, port: int) -> bool:
    """Whether the bridge on ``port`` has forwarded any load reading yet."""
    readings = scrape(http, port, {"site": LOAD_SITE}, timeout_s=1.0)
    return readings.get("chemwatch_ingest_readings_total", 0.0) > 0


def soak(opts: Options, settings: BaseProcessSettings, rate: float) -> dict[str, Any]:
    """``soak_minutes`` at ``rate``: RSS flat within 10 % after warm-up, lag bounded,
    no error lines, ledger complete."""
    sensors = opts.sensors[0]
    seconds = opts.soak_minutes * 60
    warmup = min(120.0, 0.2 * seconds)
    with Config(opts, settings, sensors, f"soak-{sensors}") as cfg:
        assert cfg.sampler is not None
        cfg.sampler.interval_s = 5.0
        step = cfg.step(rate, seconds, kind="soak")
        t0 = step["t0"]
        rss = {}
        for name in cfg.sampler.samples[-1].rss:
            series = [(s.t - t0, float(s.rss.get(name, 0))) for s in cfg.sampler.samples
                      if s.t >= t0 and s.t <= step["t_end"]]  # fmt: skip
            spread = stats.rss_spread(series, warmup)
            rss[name] = None if spread is None else round(100 * spread, 1)
        lag = [(s.t - t0, s.lag_s) for s in cfg.sampler.samples if t0 <= s.t <= step["t_end"]]
        errors = cfg.errors()
        own = {
            k: v for k, v in rss.items() if k.split("-")[0] in ("ingest", "detectors", "alerting")
        }
        return {
            "minutes": opts.soak_minutes,
            "rate": rate,
            "warmup_s": warmup,
            "step": step,
            "rss_spread_pct": rss,
            "rss_flat": all(v is not None and v <= 10.0 for v in own.values()),
            "lag_bound_s": SOAK_LAG_BOUND_S,
            "lag_max_s": round(max((v for _, v in lag), default=0.0), 3),
            "lag_bounded": stats.lag_bounded(lag, SOAK_LAG_BOUND_S),
            "error_lines": errors,
            "no_errors": sum(errors.values()) == 0,
            **cfg.series(),
        }


def run(opts: Options, settings: BaseProcessSettings,
        on_part: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole course; ``on_part`` sees the summary after each part (partial reports)."""
    summary: dict[str, Any] = {"options": _jsonable(opts), "started": time.time()}
    summary["stepped"] = stepped(opts, settings)
    if on_part:
        on_part(summary)
    best = summary["stepped"]["sustained_readings_per_s"]
    base_rate = round(best / 2) if best else opts.rates[0]
    if len(opts.sensors) > 1:
        summary["cost_rate"] = base_rate
        summary["cost_growth"] = cost_growth(opts, settings, base_rate)
        if on_part:
            on_part(summary)
    if opts.kill_worker:
        summary["worker_kill"] = worker_kill(opts, settings, base_rate)
        if on_part:
            on_part(summary)
    if opts.soak_minutes > 0:
        summary["soak"] = soak(opts, settings, opts.soak_rate or base_rate)
    summary["finished"] = time.time()
    return summary


def _jsonable(opts: Options) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.__dict__.items()}
