"""``chemwatch alerting``: alarm lifecycle service with its HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvicorn
from psycopg_pool import ConnectionPool

from alerting.api import create_app
from alerting.api.auth import hash_password
from alerting.consumer import ConditionConsumer
from alerting.context import build_context, utc_now
from alerting.listen import ChangeListener
from alerting.notify.delivery import run_notifier
from alerting.relay import run_relay
from alerting.settings import AlertingSettings
from alerting.ticker import run_ticker
from common.cli import add_common_arguments
from common.heap import bound_c_heap, settle_heap
from common.migrate import migrate
from common.process import guarded, module_main, settings_from_args
from common.service import setup_logging, stop_on_signals

log = logging.getLogger(__name__)
_FLAGS: dict[str, tuple[str, ...]] = {"group_id": ("alerting", "group_id")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the alerting service."""
    add_common_arguments(parser)
    parser.add_argument("--group-id", help="Kafka consumer group")
    parser.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password on stdin, print its argon2 hash for alerting.users, exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for parsed flags."""

    def main() -> int:
        bound_c_heap()
        if args.hash_password:
            print(hash_password(sys.stdin.readline().rstrip("\n")))
            return 0
        settings = settings_from_args(AlertingSettings, args, _FLAGS)
        setup_logging(settings.log_level)
        if not settings.alerting.users:
            log.warning("no API users configured (alerting.users): every API request gets 401")
        asyncio.run(_serve(settings))
        return 0

    return guarded(main)


async def _serve(settings: AlertingSettings) -> None:
    await asyncio.to_thread(migrate, settings.database)
    ctx = build_context(settings)
    consumer = ConditionConsumer(settings, ctx)
    pool = ConnectionPool(settings.database.conninfo(), min_size=1, max_size=16, open=False)
    pool.open()
    listener = ChangeListener(settings.database.conninfo())
    app = create_app(pool, settings.alerting, lambda: consumer.running, ctx, utc_now, listener)
    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,  # live streams (SSE) would otherwise hold the exit
    )
    server = uvicorn.Server(config)
    settle_heap()
    stop = stop_on_signals()
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(listener.run(stop), name="change-listener")
            tasks.create_task(consumer.run(stop), name="conditions-consumer")
            tasks.create_task(server.serve(), name="http-api")
            tasks.create_task(
                run_ticker(
                    settings.database.conninfo(),
                    ctx,
                    utc_now,
                    settings.alerting.tick_s,
                    settings.alerting.incident_quiet_s,
                    stop,
                ),
                name="ticker",
            )
            tasks.create_task(
                run_relay(settings.database, settings.kafka, stop, listener=listener),
                name="alarms-relay",
            )
            tasks.create_task(
                run_notifier(settings.database.conninfo(), settings.alerting.notify, utc_now, stop),
                name="notifier",
            )
            await stop.wait()
            server.should_exit = True
    finally:
        pool.close()
    log.info("alerting service stopped")


def main(argv: list[str] | None = None) -> int:
    """``python -m alerting``."""
    return module_main("python -m alerting", __doc__, add_arguments, argv)
