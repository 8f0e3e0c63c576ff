"""Command-line flags every process shares, mapped onto settings overrides."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# flag dest -> path inside the settings object
_COMMON_FLAGS: dict[str, tuple[str, ...]] = {
    "plant": ("plant",),
    "log_level": ("log_level",),
    "kafka_bootstrap": ("kafka", "bootstrap_servers"),
    "mqtt_host": ("mqtt", "host"),
    "mqtt_port": ("mqtt", "port"),
    "db_host": ("database", "host"),
    "db_port": ("database", "port"),
    "db_schema": ("database", "db_schema"),
    "http_host": ("http", "host"),
    "http_port": ("http", "port"),
}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for the config file and the connection settings every process has."""
    parser.add_argument("--config", type=Path, help="YAML config file (default: $CHEMWATCH_CONFIG)")
    parser.add_argument("--plant", type=Path, help="plant registry YAML")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument("--mqtt-host")
    parser.add_argument("--mqtt-port", type=int)
    parser.add_argument("--db-host")
    parser.add_argument("--db-port", type=int)
    parser.add_argument("--db-schema", help="PostgreSQL schema to use")
    parser.add_argument("--http-host", help="address for /metrics and /healthz")
    parser.add_argument("--http-port", type=int, help="port for /metrics and /healthz")


def overrides(
    args: argparse.Namespace, extra: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Any]:
    """Nested settings overrides from parsed flags (flags not given are left out)."""
    out: dict[str, Any] = {}
    for dest, path in (_COMMON_FLAGS | (extra or {})).items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out
