"""``chemwatch db migrate``: apply the database migrations."""

from __future__ import annotations

import argparse

from common.cli import add_common_arguments
from common.migrate import migrate
from common.process import guarded, settings_from_args
from common.settings import BaseProcessSettings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``db`` and its subcommands."""
    db = sub.add_parser("db", help="database administration", description=__doc__)
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    mig = db_sub.add_parser("migrate", help="apply pending migrations (idempotent)")
    add_common_arguments(mig)
    mig.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        applied = migrate(settings.database)
        schema = settings.database.db_schema
        print(
            f"applied {applied} to schema {schema}" if applied else f"schema {schema} is up to date"
        )
        return 0

    return guarded(main)
