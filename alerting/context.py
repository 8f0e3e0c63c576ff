"""Build the alerting context (plant view, rules, noise limits) from settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerting.incidents import load_rules
from alerting.plant import PlantView
from alerting.settings import AlertingSettings
from alerting.store import Context, NoiseLimits
from common.registry import load_registry

Clock = Callable[[], datetime]


def connect(conninfo: str, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A plain connection (for the long-running tasks; the API uses a pool)."""
    return psycopg.connect(conninfo, autocommit=autocommit)


def reopen(
    conn: psycopg.Connection[Any] | None, conninfo: str, autocommit: bool = False
) -> psycopg.Connection[Any]:
    """``conn`` if still open, else a new connection (the server restarted or killed it)."""
    if conn is not None and not conn.closed:
        return conn
    return connect(conninfo, autocommit)


def utc_now() -> datetime:
    """The service clock (tests pass their own)."""
    return datetime.now(UTC)


def build_context(settings: AlertingSettings) -> Context:
    """Registry, rules and limits, loaded and validated once at start-up."""
    opts = settings.alerting
    plant = PlantView(load_registry(settings.plant) if settings.plant.exists() else None)
    rules = load_rules(opts.rules) if opts.rules is not None else None
    limits = NoiseLimits(
        chatter_activations=opts.chatter_activations,
        chatter_window_s=opts.chatter_window_s,
        chatter_shelve_s=opts.chatter_shelve_s,
        flood_start=opts.flood_start,
        flood_end=opts.flood_end,
        flood_window_s=opts.flood_window_s,
    )
    return Context(plant=plant, rules=rules, limits=limits)
