"""``chemwatch db``: apply migrations, run storage maintenance, set retention."""

from __future__ import annotations

import argparse
import sys

import psycopg

from common.cli import add_common_arguments
from common.migrate import flavour_of, maintain, migrate
from common.process import guarded, settings_from_args
from common.settings import BaseProcessSettings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``db`` and its subcommands."""
    db = sub.add_parser("db", help="database administration", description=__doc__)
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    mig = db_sub.add_parser("migrate", help="apply pending migrations (idempotent)")
    add_common_arguments(mig)
    mig.set_defaults(func=_migrate)
    mnt = db_sub.add_parser(
        "maintain",
        help="create time partitions ahead and drop data past retention (run daily)",
        description="Plain PostgreSQL: create partitions ahead, drop partitions past the "
        "retention windows. TimescaleDB: make the retention policies match the windows.",
    )
    add_common_arguments(mnt)
    mnt.set_defaults(func=_maintain)
    ret = db_sub.add_parser(
        "retention",
        help="show or change how long raw readings and rollups are kept",
        description="Without options: show the retention windows. With options: store "
        "them and apply them now (dropping what is older).",
    )
    add_common_arguments(ret)
    ret.add_argument("--raw-days", type=int, metavar="N", help="keep raw readings N days")
    ret.add_argument("--rollup-days", type=int, metavar="N", help="keep rollups N days")
    ret.set_defaults(func=_retention)


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


def _maintain(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        migrate(settings.database)  # itself ends with a maintenance run
        with psycopg.connect(settings.database.conninfo(), autocommit=True) as conn:
            lines = maintain(conn)
            print(f"{flavour_of(conn)}: " + ("; ".join(lines) if lines else "nothing to do"))
        return 0

    return guarded(main)


def _retention(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        for flag in ("raw_days", "rollup_days"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                print(f"error: --{flag.replace('_', '-')} must be at least 1", file=sys.stderr)
                return 2
        migrate(settings.database)
        with psycopg.connect(settings.database.conninfo(), autocommit=True) as conn:
            if args.raw_days is not None or args.rollup_days is not None:
                try:
                    conn.execute(
                        "UPDATE storage_policy SET"
                        " raw_keep = COALESCE(make_interval(days => %s), raw_keep),"
                        " rollup_keep = COALESCE(make_interval(days => %s), rollup_keep),"
                        " updated_at = now()",
                        (args.raw_days, args.rollup_days),
                    )
                except psycopg.errors.CheckViolation:
                    print(
                        "error: rollups must be kept at least as long as raw readings",
                        file=sys.stderr,
                    )
                    return 2
                for line in maintain(conn):
                    print(line)
            raw, rollup = conn.execute(
                "SELECT extract(day FROM raw_keep)::int, extract(day FROM rollup_keep)::int"
                " FROM storage_policy"
            ).fetchone() or (None, None)
            print(f"raw readings kept {raw} days, rollups kept {rollup} days")
        return 0

    return guarded(main)
