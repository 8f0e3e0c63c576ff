"""``chemwatch bench e2e``: the real stack and every ChemWatch service, stepped load.

Runs ingest bridge(s), detector worker(s) and alerting as real processes against the
running local stack (private topics, MQTT prefix and schema: nobody else is disturbed),
drives them with the simulator's load mode at stepped rates until the pipeline no longer
keeps up, and writes report.md, summary.json and PNG plots into --out. Progress goes to
stderr. See docs/bench-e2e.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from pathlib import Path

from chemwatch.e2e import report, runner
from common.cli import add_common_arguments
from common.process import guarded, settings_from_args
from common.settings import BaseProcessSettings

DEFAULT_RATES = {
    "batch": "20000,50000,100000,150000,200000",
    "single": "2000,5000,10000,15000",
}


def _numbers(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from exc
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("give at least one positive number")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``chemwatch bench e2e``."""
    add_common_arguments(p)
    p.add_argument("--mode", choices=["batch", "single"], default="batch",
                   help="gateway batches (rates in readings/s) or single readings "
                        "(rates in MQTT messages/s); QoS 1 either way")  # fmt: skip
    p.add_argument("--rates", type=_numbers, default=None,
                   help="stepped rates, e.g. 20000,50000,100000 (default per mode: batch "
                        f"{DEFAULT_RATES['batch']}; single {DEFAULT_RATES['single']})")  # fmt: skip
    p.add_argument("--step-seconds", type=float, default=15.0, help="length of each step")
    p.add_argument("--drain-seconds", type=float, default=30.0,
                   help="grace after a step for the ledger to reach the database")  # fmt: skip
    p.add_argument("--sensors", type=_numbers, default=(10_000,),
                   help="sensor counts: the first for the steps, each further one for a "
                        "cost-growth step at the same total rate: 10000,1000,100000")  # fmt: skip
    p.add_argument(
        "--bridges", type=int, default=1, help="ingest bridges (MQTT shared subscription)"
    )
    p.add_argument("--workers", type=int, default=1, help="detector workers (one consumer group)")
    p.add_argument("--publishers", type=int, default=None,
                   help="load generator processes (default: 1 in batch mode, where one "
                        "sends 100,000 readings/s and more cost CPU the pipeline needs; "
                        "2 in single mode, where paho's cost per message bounds each)")  # fmt: skip
    p.add_argument("--probes", type=int, default=20, help="latency probe sensors")
    p.add_argument("--probe-rate", type=float, default=20.0, help="probe readings/s")
    p.add_argument("--no-half-rate", dest="half_rate", action="store_false",
                   help="skip the step at half the sustained rate")  # fmt: skip
    p.add_argument("--soak-minutes", type=float, default=0.0, help="soak run length (0: none)")
    p.add_argument("--soak-rate", type=float, default=0.0,
                   help="soak rate (default: half the sustained rate)")  # fmt: skip
    p.add_argument("--kill-worker", action="store_true",
                   help="one more step at half the sustained rate in which detector worker 0 "
                        "is killed (SIGKILL) a third of the way in and restarted 1 s later: "
                        "throughput, exactly-once ledger, time to catch up")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default reports/e2e-<UTC time>)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the JSON summary on stdout")
    p.set_defaults(func=run)


def options(args: argparse.Namespace) -> runner.Options:
    out = args.out or Path("reports") / time.strftime("e2e-%Y%m%dT%H%M%SZ", time.gmtime())
    return runner.Options(
        mode=args.mode,
        rates=args.rates or _numbers(DEFAULT_RATES[args.mode]),
        step_seconds=args.step_seconds,
        drain_seconds=args.drain_seconds,
        sensors=tuple(int(s) for s in args.sensors),
        bridges=args.bridges,
        workers=args.workers,
        publishers=args.publishers or (1 if args.mode == "batch" else 2),
        probes=args.probes,
        probe_rate=args.probe_rate,
        half_rate=args.half_rate,
        soak_minutes=args.soak_minutes,
        soak_rate=args.soak_rate,
        kill_worker=args.kill_worker,
        out=out,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        # SIGTERM (`timeout`, a CI runner, kill) unwinds like Ctrl-C, so the services the
        # run started are stopped and its private topics and schema removed: by default
        # the interpreter would exit at once and leave them running
        signal.signal(signal.SIGTERM, _interrupt)
        settings = settings_from_args(BaseProcessSettings, args)
        opts = options(args)
        command = "chemwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])

        def save(summary: dict[str, object]) -> None:
            summary["command"] = command
            report.write_all(summary, opts.out)

        summary = runner.run(opts, settings, on_part=save)
        save(summary)
        runner.say(f"report: {opts.out / 'report.md'}")
        if args.json:
            print(json.dumps(summary, default=str))
        else:
            st = summary["stepped"]
            print(f"sustained end to end: {st['sustained_readings_per_s']:,.0f} readings/s; "
                  f"report {opts.out / 'report.md'}")  # fmt: skip
        return 0

    return guarded(main)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
