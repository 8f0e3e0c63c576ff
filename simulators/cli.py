"""``chemwatch simulate``: publish a simulated plant's readings over MQTT."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from common.cli import add_common_arguments
from common.process import guarded, module_main, settings_from_args
from common.registry import load_registry
from common.service import HealthServer, setup_logging, stop_on_signals
from simulators.plant import PlantModel, parse_breach
from simulators.publisher import Publisher
from simulators.settings import SimulatorSettings

_FLAGS = {
    "speed": ("simulator", "speed"),
    "duration": ("simulator", "duration_s"),
    "seed": ("simulator", "seed"),
    "breach": ("simulator", "breaches"),
    "ledger": ("simulator", "ledger"),
    "client_id": ("simulator", "client_id"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the simulator."""
    add_common_arguments(parser)
    parser.add_argument(
        "--speed", type=float, help="publish N times faster than each sensor's interval"
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--seed", type=int, help="random seed of the noise")
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        settings = settings_from_args(SimulatorSettings, args, _FLAGS)
        setup_logging(settings.log_level)
        registry = load_registry(settings.plant)
        breaches = [parse_breach(b, registry) for b in settings.simulator.breaches]
        model = PlantModel(registry, breaches, settings.simulator.seed)
        asyncio.run(_serve(settings, Publisher(settings, registry, model)))
        return 0

    return guarded(main)


async def _serve(settings: SimulatorSettings, publisher: Publisher) -> None:
    with HealthServer(settings.http.host, settings.http.port, lambda: publisher.connected):
        await publisher.run(stop_on_signals())


def main(argv: list[str] | None = None) -> int:
    """``python -m simulators``."""
    return module_main("python -m simulators", __doc__, add_arguments, argv)
