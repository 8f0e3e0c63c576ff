"""Versioned SQL migrations: applied in order, recorded, safe to run concurrently."""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg
from psycopg import sql

from common.settings import DatabaseSettings

log = logging.getLogger(__name__)

# Any constant will do as long as every ChemWatch process uses the same one.
_LOCK_KEY = 0x43_48_45_4D  # "CHEM"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def available() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("common.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found)


def migrate(database: DatabaseSettings) -> list[int]:
    """Apply pending migrations to the configured schema; return the versions applied."""
    applied: list[int] = []
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        # A session lock serialises concurrent starters (CREATE SCHEMA IF NOT EXISTS
        # itself races); each migration has its own transaction, so a failure leaves
        # the earlier ones recorded.
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            schema = sql.Identifier(database.db_schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET search_path TO {}, public").format(schema))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, text in available():
                if version in done:
                    continue
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
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
