"""``chemwatch bench <area>``: benchmarks as commands (a table, or --json)."""

from __future__ import annotations

import argparse

from chemwatch import bench_alerting


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bench`` and its areas."""
    p = sub.add_parser("bench", help="run a benchmark", description=__doc__)
    areas = p.add_subparsers(dest="area", required=True, metavar="AREA")
    bench_alerting.add_arguments(
        areas.add_parser(
            "alerting", help="condition event -> SSE latency", description=bench_alerting.__doc__
        )
    )
