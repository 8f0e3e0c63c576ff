"""``chemwatch registry sync``: mirror the plant YAML into the sites/units/sensors tables."""

from __future__ import annotations

import argparse

import psycopg

from common.cli import add_common_arguments
from common.migrate import migrate
from common.process import guarded, settings_from_args
from common.registry import load_registry
from common.registry_store import sync_registry
from common.settings import BaseProcessSettings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``registry`` and its subcommands."""
    reg = sub.add_parser("registry", help="plant registry tools", description=__doc__)
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")
    sync = reg_sub.add_parser(
        "sync",
        help="upsert sites, units and sensors from the plant YAML (idempotent)",
        description="Upsert the plant YAML into the database; what left the YAML is "
        "marked inactive, never deleted.",
    )
    add_common_arguments(sync)
    sync.set_defaults(func=_sync)


def _sync(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        registry = load_registry(settings.plant)
        migrate(settings.database)
        with psycopg.connect(settings.database.conninfo()) as conn:
            result = sync_registry(conn, registry)
        for table in ("sites", "units", "sensors"):
            print(
                f"{table}: {result.changed[table]} inserted or changed, "
                f"{result.deactivated[table]} marked inactive"
            )
        return 0

    return guarded(main)
