"""``chemwatch stack up|down|status``: argparse wiring and exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from chemwatch.stack.config import HOME_ENV, SERVICE_NAMES, StackError, load_stack_settings
from chemwatch.stack.manager import down, status, up
from common.errors import ChemWatchError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_RUNNING = 3

_DESCRIPTION = """\
A local service stack without containers: Mosquitto, PostgreSQL and Kafka (KRaft) as
plain processes with their files under one home directory (default .chemwatch). Ports
and credentials come from the same settings the services use (--config, environment).
"""

_COMMANDS = {
    "up": (
        "start the services that are not running and wait until they are healthy",
        "Start every selected service that is not running yet (installing Mosquitto or "
        "PostgreSQL with apt-get and fetching Kafka's jars with Maven on first use) and "
        "wait until each passes a real health check. Services already running are left "
        "alone. Exit 0 when all are up, 1 otherwise.",
    ),
    "down": (
        "stop the services started from this home",
        "Stop the processes recorded in this home's PID files (never anything else, such "
        "as a system PostgreSQL or Mosquitto). Exit 0, also when nothing runs.",
    ),
    "status": (
        "show whether each service runs and is healthy",
        "One line per service: running/unhealthy/stopped, pid and address. "
        "Exit 0 when all selected services run and are healthy, 3 otherwise.",
    ),
}


def _services_arg(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SERVICE_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(SERVICE_NAMES)}, got {text!r}"
        )
    return names


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"where the stack keeps its files (default: ${HOME_ENV} or ./.chemwatch)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML config file with ports and credentials (default: $CHEMWATCH_CONFIG)",
    )
    parser.add_argument(
        "--only",
        type=_services_arg,
        default=None,
        metavar="SERVICES",
        help=f"comma-separated subset of {','.join(SERVICE_NAMES)} (default: all)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``up``/``down``/``status`` sub-commands to ``parser``."""
    commands = parser.add_subparsers(
        dest="stack_command",
        metavar="{up,down,status}",
        required=True,
    )
    for name, (summary, description) in _COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=description)
        _add_common(sub)
        sub.set_defaults(func=run)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``stack`` on the main CLI's sub-parsers (an argparse ``_SubParsersAction``).

    Each leaf sets ``func``: the main CLI calls ``args.func(args)`` and exits with the
    int it returns.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stack",
        help="run Mosquitto, PostgreSQL and Kafka locally (up/down/status)",
        description=_DESCRIPTION,
    )
    configure(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``stack up|down|status``; returns the exit code."""
    # aiokafka logs every refused connection while Kafka starts; the progress line
    # already says we are waiting, and a failure prints the broker's own log.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        stack, settings = load_stack_settings(args.config, args.home)
        if args.stack_command == "up":
            up(stack, settings, args.only)
            return EXIT_OK
        if args.stack_command == "down":
            down(stack, settings, args.only)
            return EXIT_OK
        reports = status(stack, settings, args.only)
        return EXIT_OK if all(report.ok for report in reports) else EXIT_NOT_RUNNING
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ChemWatchError as exc:  # ConfigError: names the file/variable and key
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
