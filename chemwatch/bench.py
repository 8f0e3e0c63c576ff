"""``chemwatch bench <area>``: benchmarks as commands (a table, or --json), never timed tests."""

from __future__ import annotations

import argparse

from chemwatch import bench_alerting, bench_dashboards, bench_ingest, bench_parse, bench_storage
from chemwatch.e2e import cli as bench_e2e
from detectors import tools_cli as detectors_tools


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bench`` and one subcommand per benchmarked area."""
    bench = sub.add_parser("bench", help="benchmarks", description=__doc__)
    areas = bench.add_subparsers(dest="bench_area", required=True, metavar="AREA")
    bench_storage.add_parser(areas)
    bench_dashboards.add_parser(areas)
    bench_ingest.add_arguments(
        areas.add_parser(
            "ingest", help="MQTT -> Kafka throughput", description=bench_ingest.__doc__
        )
    )
    bench_parse.add_parser(areas)
    detectors_tools.add_bench(areas)
    bench_alerting.add_arguments(
        areas.add_parser(
            "alerting", help="condition event -> SSE latency", description=bench_alerting.__doc__
        )
    )
    bench_e2e.add_arguments(
        areas.add_parser(
            "e2e", help="the whole pipeline, stepped load", description=bench_e2e.__doc__
        )
    )
