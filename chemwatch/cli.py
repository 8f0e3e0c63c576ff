"""``chemwatch``: one command for every ChemWatch process and tool."""

from __future__ import annotations

import argparse
import sys

from alerting import cli as alerting_cli
from chemwatch import bench, db, demo, registry_cli, stack, tail
from detectors import cli as detectors_cli
from detectors import tools_cli as detectors_tools
from ingest import cli as ingest_cli
from simulators import cli as simulators_cli
from simulators import load as simulators_load
from simulators import replay as simulators_replay
from simulators import score as simulators_score


def build_parser() -> argparse.ArgumentParser:
    """The full command tree; every level has --help."""
    parser = argparse.ArgumentParser(
        prog="chemwatch",
        description="Monitoring backend for hazardous-chemical facilities.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack.add_parser(sub)
    for name, module, text in (
        ("ingest", ingest_cli, "run the MQTT -> Kafka ingest bridge"),
        ("detect", detectors_cli, "run a detector worker"),
        ("alerting", alerting_cli, "run the alerting service and its HTTP API"),
        ("simulate", simulators_cli, "publish a simulated plant over MQTT"),
    ):
        module.add_arguments(sub.add_parser(name, help=text, description=module.__doc__))
    simulators_score.add_parser(sub)
    simulators_load.add_parser(sub)
    simulators_replay.add_parser(sub)
    db.add_parser(sub)
    registry_cli.add_parser(sub)
    bench.add_parser(sub)
    demo.add_parser(sub)
    tail.add_parser(sub)
    detectors_tools.add_evaluate(sub)
    detectors_tools.add_detectors(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
