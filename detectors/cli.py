"""``chemwatch detect``: run a detector worker (one member of the consumer group)."""

from __future__ import annotations

import argparse
import asyncio

from common.cli import add_common_arguments
from common.heap import bound_c_heap, settle_heap
from common.process import guarded, module_main, settings_from_args
from common.registry import Registry, load_registry
from common.service import HealthServer, setup_logging, stop_on_signals
from detectors.settings import DetectorSettings
from detectors.worker import Worker

_FLAGS = {
    "group_id": ("detectors", "group_id"),
    "fault_exit_before_commit": ("detectors", "fault_exit_before_commit"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the detector worker."""
    add_common_arguments(parser)
    parser.add_argument("--group-id", help="Kafka consumer group of the workers")
    parser.add_argument("--fault-exit-before-commit", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        bound_c_heap()
        settings = settings_from_args(DetectorSettings, args, _FLAGS)
        setup_logging(settings.log_level)
        asyncio.run(_serve(settings, load_registry(settings.plant)))
        return 0

    return guarded(main)


async def _serve(settings: DetectorSettings, registry: Registry) -> None:
    worker = Worker(settings, registry)
    settle_heap()
    with HealthServer(settings.http.host, settings.http.port, worker.healthy):
        await worker.run(stop_on_signals())


def main(argv: list[str] | None = None) -> int:
    """``python -m detectors``."""
    return module_main("python -m detectors", __doc__, add_arguments, argv)
