"""Connecting to PostgreSQL with errors that say where, never with what password."""

from __future__ import annotations

from typing import Any

import psycopg

from common.errors import ServiceUnavailable
from common.settings import DatabaseSettings


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL refused or could not be reached; the message names host, port, db, user."""


def connect(database: DatabaseSettings, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """Open a connection; a failure raises :class:`DatabaseUnavailable` (one line, no secret)."""
    try:
        return psycopg.connect(database.conninfo(), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {database.describe()}: {redact(str(exc), database)}"
        ) from exc


def redact(message: str, database: DatabaseSettings) -> str:
    """``message`` on one line, with the password masked should libpq ever echo it."""
    text = " ".join(message.split())
    secret = database.password.get_secret_value()
    return text.replace(secret, "**********") if secret else text
