"""``chemwatch alerting``: alarm lifecycle service with its HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvicorn
from psycopg_pool import ConnectionPool

from alerting.api import create_app
from alerting.consumer import ConditionConsumer
from alerting.settings import AlertingSettings
from common.cli import add_common_arguments
from common.migrate import migrate
from common.process import guarded, module_main, settings_from_args
from common.service import setup_logging, stop_on_signals

log = logging.getLogger(__name__)
_FLAGS = {"group_id": ("alerting", "group_id")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the alerting service."""
    add_common_arguments(parser)
    parser.add_argument("--group-id", help="Kafka consumer group")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        settings = settings_from_args(AlertingSettings, args, _FLAGS)
        setup_logging(settings.log_level)
        if not settings.alerting.users:
            log.warning("no API users configured (alerting.users): every API request gets 401")
        asyncio.run(_serve(settings))
        return 0

    return guarded(main)


async def _serve(settings: AlertingSettings) -> None:
    await asyncio.to_thread(migrate, settings.database)
    consumer = ConditionConsumer(settings)
    pool = ConnectionPool(settings.database.conninfo(), min_size=1, max_size=8, open=False)
    pool.open()
    app = create_app(pool, settings.alerting.users, lambda: consumer.running)
    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    stop = stop_on_signals()
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(consumer.run(stop), name="conditions-consumer")
            tasks.create_task(server.serve(), name="http-api")
            await stop.wait()
            server.should_exit = True
    finally:
        pool.close()
    log.info("alerting service stopped")


def main(argv: list[str] | None = None) -> int:
    """``python -m alerting``."""
    return module_main("python -m alerting", __doc__, add_arguments, argv)
