"""``chemwatch``: one command for every ChemWatch process and tool.

Each command's module is imported only when that command runs (or for the full
``--help``): the detector worker pulls in numba and scipy, the alerting service FastAPI,
and ``chemwatch stack up`` or ``chemwatch tail`` should not pay seconds of start-up for
them (the test suite and the demo start such commands many times).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

Register = Callable[[Any], None]


def _tool(module: str, function: str = "add_parser") -> Register:
    """A command whose module registers its own parser with ``function(sub)``."""

    def register(sub: Any) -> None:
        getattr(importlib.import_module(module), function)(sub)

    return register


def _service(module: str, name: str, text: str) -> Register:
    """A long-running process: its module adds its flags to a parser made here."""

    def register(sub: Any) -> None:
        mod = importlib.import_module(module)
        mod.add_arguments(sub.add_parser(name, help=text, description=mod.__doc__))

    return register


# In the order ``chemwatch --help`` lists them.
COMMANDS: dict[str, Register] = {
    "stack": _tool("chemwatch.stack"),
    "ingest": _service("ingest.cli", "ingest", "run the MQTT -> Kafka ingest bridge"),
    "detect": _service("detectors.cli", "detect", "run a detector worker"),
    "alerting": _service("alerting.cli", "alerting", "run the alerting service and its HTTP API"),
    "simulate": _service("simulators.cli", "simulate", "publish a simulated plant over MQTT"),
    "score": _tool("simulators.score"),
    "loadgen": _tool("simulators.load"),
    "replay": _tool("simulators.replay"),
    "db": _tool("chemwatch.db"),
    "registry": _tool("chemwatch.registry_cli"),
    "bench": _tool("chemwatch.bench"),
    "demo": _tool("chemwatch.demo"),
    "tail": _tool("chemwatch.tail"),
    "evaluate": _tool("detectors.tools_cli", "add_evaluate"),
    "detectors": _tool("detectors.tools_cli", "add_detectors"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command tree (every level has --help); only ``command``'s branch if given."""
    parser = argparse.ArgumentParser(
        prog="chemwatch",
        description="Monitoring backend for hazardous-chemical facilities.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, register in COMMANDS.items():
        if command is None or name == command:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(first if first in COMMANDS else None).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
