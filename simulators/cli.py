"""``chemwatch simulate``: publish a simulated plant (and a scenario) over MQTT."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from common.cli import add_common_arguments
from common.errors import ConfigError
from common.process import guarded, module_main, settings_from_args
from common.registry import Registry, load_registry
from common.service import HealthServer, setup_logging, stop_on_signals
from simulators.dryrun import plot, record
from simulators.plant import Simulation, parse_breach
from simulators.publisher import Publisher, Summary
from simulators.scenario import Scenario, check_events, load_scenario
from simulators.settings import SimulatorSettings
from simulators.truth import iso, write_truth

UNBOUNDED_HEADSTART_S = 23 * 3600

_FLAGS = {
    "speed": ("simulator", "speed"),
    "duration": ("simulator", "duration_s"),
    "seed": ("simulator", "seed"),
    "breach": ("simulator", "breaches"),
    "ledger": ("simulator", "ledger"),
    "client_id": ("simulator", "client_id"),
    "scenario": ("simulator", "scenario"),
    "truth": ("simulator", "truth"),
    "format": ("simulator", "format"),
    "start": ("simulator", "start"),
    "rbe_pct": ("simulator", "rbe_pct"),
    "progress": ("simulator", "progress"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the simulator."""
    add_common_arguments(parser)
    parser.add_argument("--scenario", type=Path, help="scenario YAML (hazards and faults)")
    parser.add_argument("--truth", type=Path, help="write the ground truth (JSON lines) here")
    parser.add_argument(
        "--speed", type=float, help="simulated seconds per wall second (60 = a day in 24 min)"
    )
    parser.add_argument(
        "--duration", type=float, metavar="S", help="stop after S simulated seconds"
    )
    parser.add_argument("--seed", type=int, help="random seed (same seed, same readings)")
    parser.add_argument("--format", choices=["json", "batch", "sparkplug"])
    parser.add_argument(
        "--start",
        help="simulated clock at the start: now, aligned (run ends at the wall clock), "
        "auto (aligned when --speed > 1) or an RFC 3339 time",
    )
    parser.add_argument("--rbe-pct", type=float, help="report-by-exception deadband, %% of span")
    parser.add_argument(
        "--progress", action="store_true", default=None, help="status line on stderr"
    )
    parser.add_argument(
        "--breach",
        action="append",
        metavar="SENSOR=VALUE@START+DURATION",
        help="hold SENSOR at VALUE from START s for DURATION s (repeatable)",
    )
    parser.add_argument(
        "--ledger", type=Path, help="append every published reading to this JSONL file"
    )
    parser.add_argument("--client-id", help="MQTT client id")
    parser.add_argument(
        "--dry-run", action="store_true", help="no broker: simulate as fast as possible"
    )
    parser.add_argument("--plot", type=Path, help="with --dry-run: PNG of the affected sensors")
    parser.set_defaults(func=run)


def build_scenario(settings: SimulatorSettings, registry: Registry) -> Scenario:
    """The scenario file (if any) plus the --breach events."""
    opts = settings.simulator
    scenario = (
        load_scenario(opts.scenario, registry) if opts.scenario else Scenario(name="steady state")
    )
    extra = tuple(parse_breach(b, registry) for b in opts.breaches)
    if extra:
        events = check_events(scenario.events + extra, registry, "--breach")
        scenario = scenario.model_copy(update={"events": events})
    return scenario


def start_ns(setting: str, speed: float, duration_s: float | None, now_ns: int) -> int:
    """Simulated clock at t = 0.

    ``aligned`` starts in the past so that the run ends at the wall clock: accelerated
    timestamps then never run ahead of real time (ingest rejects readings more than
    ``max_future_skew_s`` ahead), and stay within ``max_age_s`` (24 h) when the
    simulated span is at most a day. ``auto`` is ``now`` at real time, ``aligned``
    when accelerated with a known duration, and 23 h back when open-ended.
    """
    if setting == "now" or (setting == "auto" and speed <= 1):
        return now_ns
    if setting == "auto" and duration_s is None:
        # open-ended and accelerated: start 23 h back, which leaves (23 h + 5 min) /
        # (speed - 1) of wall time before timestamps run ahead of ingest's skew limit
        return now_ns - UNBOUNDED_HEADSTART_S * 1_000_000_000
    if setting in ("aligned", "auto"):
        if duration_s is None:
            raise ConfigError("--start", setting, "aligned start needs a duration")
        return now_ns - round((duration_s - duration_s / speed) * 1e9)
    try:
        parsed = datetime.fromisoformat(setting.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError("--start", setting, "not now/aligned/auto or RFC 3339") from exc
    if parsed.tzinfo is None:
        raise ConfigError("--start", setting, "give a UTC offset")
    return round(parsed.timestamp() * 1e9)


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        settings = settings_from_args(SimulatorSettings, args, _FLAGS)
        setup_logging(settings.log_level)
        opts = settings.simulator
        registry = load_registry(settings.plant)
        if opts.format == "sparkplug":
            _sparkplug_split(registry)
        scenario = build_scenario(settings, registry)
        duration = opts.duration_s or scenario.duration
        t0 = start_ns(opts.start, opts.speed, duration, time.time_ns())
        sim = Simulation(registry, scenario, opts.seed, t0, rbe_pct=opts.rbe_pct, dt_s=opts.step_s)
        if getattr(args, "dry_run", False):
            summary = _dry_run(sim, duration, getattr(args, "plot", None))
        else:
            summary = asyncio.run(_serve(settings, Publisher(settings, registry, sim), duration))
        truth = opts.truth
        if truth is None and opts.scenario is not None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            truth = Path(".chemwatch/runs") / f"{opts.scenario.stem}-{stamp}.truth.jsonl"
        if truth is not None:
            write_truth(truth, _header(settings, scenario, t0, summary), sim.truth.records())
        print(summary.line())
        if truth is not None:
            print(f"ground truth: {truth}")
        return 0

    return guarded(main)


def _sparkplug_split(registry: Registry) -> None:
    """Refuse a plant without Sparkplug mapping; say which units go out as JSON instead."""
    mapped = sorted(u for u, (_s, unit) in registry.units.items() if unit.sparkplug)
    if not mapped:
        raise ConfigError(
            "--format", "sparkplug", "no unit of the plant has a `sparkplug` mapping "
            "(units[].sparkplug: {group, edge_node, device}); use json or batch"
        )  # fmt: skip
    rest = sorted(set(registry.units) - set(mapped))
    print(f"Sparkplug B: {', '.join(mapped)}", file=sys.stderr)
    if rest:
        print(f"JSON singles (no sparkplug mapping): {', '.join(rest)}", file=sys.stderr)


def _dry_run(sim: Simulation, duration: float | None, plot_path: Path | None) -> Summary:
    if duration is None:
        raise ConfigError("--dry-run", "", "needs --duration or a scenario with a duration")
    started = time.monotonic()
    rec = record(sim, duration)
    summary = Summary(readings=len(rec.sensor), messages=len(rec.sensor),
                      malformed=int(rec.malformed.sum()), sim_s=sim.t,
                      wall_s=time.monotonic() - started)  # fmt: skip
    if plot_path is not None:
        shown = plot(plot_path, sim, rec)
        print(f"plot: {plot_path} ({', '.join(shown)})")
    return summary


def _header(
    settings: SimulatorSettings, scenario: Scenario, t0: int, summary: Summary
) -> dict[str, object]:
    opts = settings.simulator
    return {
        "plant": str(settings.plant),
        "scenario": scenario.name,
        "scenario_file": str(opts.scenario) if opts.scenario else None,
        "seed": opts.seed,
        "speed": opts.speed,
        "format": opts.format,
        "start": iso(t0),
        "end": iso(t0 + summary.sim_s * 1e9),
        "readings": summary.readings,
        "malformed": summary.malformed,
        "unacknowledged": summary.lost,
        "max_fall_behind_s": round(summary.behind_s, 3),
        "gateway_transitions": summary.events,  # as they happened on the broker
    }


async def _serve(
    settings: SimulatorSettings, publisher: Publisher, duration_s: float | None
) -> Summary:
    with HealthServer(settings.http.host, settings.http.port, lambda: publisher.connected):
        return await publisher.run(stop_on_signals(), duration_s)


def main(argv: list[str] | None = None) -> int:
    """``python -m simulators``."""
    return module_main("python -m simulators", __doc__, add_arguments, argv)
