"""Versioned SQL migrations: applied in order, recorded, safe to run concurrently.

A migration is ``NNNN_name.sql``, or a pair ``NNNN_name.timescale.sql`` /
``NNNN_name.postgres.sql`` when TimescaleDB and plain PostgreSQL need different DDL
for the same tables and views. Migration 0002 creates the timescaledb extension when
the server has it; the flavour of every later pair follows from that.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any, Literal

import psycopg
from psycopg import sql

from common.database import connect
from common.settings import DatabaseSettings

log = logging.getLogger(__name__)

Flavour = Literal["timescale", "postgres"]
FLAVOURS: tuple[Flavour, ...] = ("timescale", "postgres")

# Any constant will do as long as every ChemWatch process uses the same one. The lock
# is per schema (second key): deployments or tests sharing one database migrate side
# by side. The database-wide step (CREATE EXTENSION, migration 0002) takes its own lock.
_LOCK_KEY = 0x43_48_45_4D  # "CHEM"
_LOCK = "SELECT pg_advisory_lock(%s, hashtext(%s))"
_UNLOCK = "SELECT pg_advisory_unlock(%s, hashtext(%s))"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescale|postgres))?\.sql$")


def available(flavour: Flavour = "postgres") -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with the package, in order.

    Where a version has a ``.timescale`` / ``.postgres`` pair, the ``flavour`` one is taken.
    """
    common: dict[int, tuple[str, str]] = {}
    variant: dict[int, tuple[str, str]] = {}
    for entry in resources.files("common.migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version, name, kind = int(match.group(1)), match.group(2), match.group(3)
        if kind is None:
            common[version] = (name, entry.read_text("utf-8"))
        elif kind == flavour:
            variant[version] = (name, entry.read_text("utf-8"))
    chosen = common | variant
    return [(v, *chosen[v]) for v in sorted(chosen)]


def flavour_of(conn: psycopg.Connection[Any]) -> Flavour:
    """``timescale`` when the timescaledb extension is installed in this database."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return "timescale" if row else "postgres"


def migrate(database: DatabaseSettings) -> list[int]:
    """Apply pending migrations to the configured schema; return the versions applied.

    Afterwards storage_maintain() runs (partitions ahead, retention), so every service
    start also keeps the time partitions in shape.
    """
    applied: list[int] = []
    with connect(database, autocommit=True) as conn:
        # A session lock serialises concurrent starters (CREATE SCHEMA IF NOT EXISTS
        # itself races); each migration has its own transaction, so a failure leaves
        # the earlier ones recorded.
        conn.execute(_LOCK, (_LOCK_KEY, database.db_schema))
        try:
            schema = sql.Identifier(database.db_schema)
            # Only when missing: CREATE SCHEMA needs CREATE on the database even with IF
            # NOT EXISTS, and a service role may own nothing but its schema.
            if not conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (database.db_schema,)
            ).fetchone():
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET search_path TO {}, public").format(schema))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, _text in available():
                if version in done:
                    continue
                # The extension may have been created by the previous migration.
                text = {v: t for v, _n, t in available(flavour_of(conn))}[version]
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                log.info(
                    "applied migration %04d_%s to schema %s", version, name, database.db_schema
                )
                applied.append(version)
            refresh_pending(conn)
            for line in maintain(conn):
                log.info("storage maintenance in %s: %s", database.db_schema, line)
        finally:
            conn.execute(_UNLOCK, (_LOCK_KEY, database.db_schema))
    return applied


def refresh_pending(conn: psycopg.Connection[Any]) -> None:
    """Refresh the continuous aggregates over the ranges a migration asked for (TimescaleDB).

    A migration that rebuilds an aggregate over existing rows (0040) cannot refresh it
    itself: ``refresh_continuous_aggregate`` refuses to run inside a transaction, and
    every migration is one. It notes the range in ``rollup_refresh_pending``; this runs
    the refresh afterwards on the autocommit connection, oldest level first, and removes
    the note once done (an interrupted refresh is retried at the next migrate).
    """
    row = conn.execute("SELECT to_regclass('rollup_refresh_pending')").fetchone()
    if row is None or row[0] is None:
        return
    pending = conn.execute(
        "SELECT view_name, lo, hi FROM rollup_refresh_pending"
        " ORDER BY view_name = 'readings_1h', view_name, lo"
    ).fetchall()
    for view, lo, hi in pending:
        conn.execute(
            "CALL refresh_continuous_aggregate(%s::regclass, %s::timestamptz, %s::timestamptz)",
            (view, lo, hi),
        )
        conn.execute(
            "DELETE FROM rollup_refresh_pending WHERE view_name = %s AND lo = %s AND hi = %s",
            (view, lo, hi),
        )
        log.info("refreshed %s from %s to %s", view, lo, hi)


def maintain(conn: psycopg.Connection[Any]) -> list[str]:
    """Run storage_maintain() (retention, partitions ahead); one line per action taken."""
    with conn.transaction():
        return [str(r[0]) for r in conn.execute("SELECT storage_maintain()")]
