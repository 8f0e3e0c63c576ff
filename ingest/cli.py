"""``chemwatch ingest``: run the MQTT -> Kafka bridge."""

from __future__ import annotations

import argparse
import asyncio
import logging

from common.cli import add_common_arguments
from common.heap import bound_c_heap, settle_heap
from common.process import guarded, module_main, settings_from_args
from common.registry import Registry, load_registry
from common.service import HealthServer, setup_logging, stop_on_signals
from ingest.bridge import Bridge
from ingest.logfilter import RateLimitFilter
from ingest.settings import IngestSettings

_FLAGS: dict[str, tuple[str, ...]] = {
    "client_id": ("ingest", "client_id"),
    "share_group": ("ingest", "share_group"),
    "auto_register": ("ingest", "auto_register"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the ingest bridge."""
    add_common_arguments(parser)
    parser.add_argument("--client-id", help="MQTT client id (unique per bridge)")
    parser.add_argument("--share-group", help="MQTT shared-subscription group ('' for none)")
    parser.add_argument(
        "--auto-register",
        action="store_true",
        default=None,
        help="accept unknown sensors (flagged uncertain, counted, logged) instead of rejecting",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        bound_c_heap()
        settings = settings_from_args(IngestSettings, args, _FLAGS)
        setup_logging(settings.log_level)
        # aiokafka logs every failed metadata attempt (hundreds a second while Kafka is
        # down): keep the first of each kind per 10 s
        logging.getLogger("aiokafka").addFilter(RateLimitFilter(10.0))
        registry = load_registry(settings.plant)
        asyncio.run(_serve(settings, registry))
        return 0

    return guarded(main)


async def _serve(settings: IngestSettings, registry: Registry) -> None:
    bridge = Bridge(settings, registry)
    settle_heap()
    with HealthServer(settings.http.host, settings.http.port, bridge.healthy, bridge.health):
        await bridge.run(stop_on_signals())


def main(argv: list[str] | None = None) -> int:
    """``python -m ingest``."""
    return module_main("python -m ingest", __doc__, add_arguments, argv)
