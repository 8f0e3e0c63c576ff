"""Folds pending rollup rows in the background, on a connection of its own.

With ``defer_rollups`` every batch transaction appends its per-minute and per-hour
aggregates to ``rollup_pending``; folding them into ``readings_1m`` / ``readings_1h``
takes tens of milliseconds at a few thousand readings/s. Run on the worker's own
database thread it held up the next poll once a second, which showed in the alarm
latency's tail; here it runs beside the poll loop instead. The fold is idempotent and
serialised by an advisory lock in the database, so a fold that fails (database away) is
simply tried again at the next kick.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg

from common import store

log = logging.getLogger(__name__)


class RollupFolder:
    """At most one fold in flight; ``kick`` never blocks the caller."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detectors-fold")
        self._running: Future[int] | None = None

    def kick(self) -> bool:
        """Start a fold unless one is still running; True if one was started."""
        if self._running is not None and not self._running.done():
            return False
        self._running = self._pool.submit(self._fold)
        return True

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the fold in flight, if any (its errors are logged, not raised)."""
        if self._running is not None:
            self._running.exception(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Let the fold in flight finish (bounded), then close the connection."""
        try:
            self.wait(timeout_s)
        except TimeoutError:
            log.warning("rollup fold still running at shutdown; its rows stay pending")
        self._pool.submit(self._disconnect).result(timeout_s)
        self._pool.shutdown(wait=False)

    def _fold(self) -> int:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._conninfo)
            return store.fold_pending_rollups(self._conn)
        except store.UNAVAILABLE as exc:
            log.warning("folding rollups failed (%s); the rows stay pending, retrying", exc)
            self._disconnect()
            return 0
        except psycopg.Error:
            log.exception("folding rollups failed; the rows stay pending, retrying")
            self._disconnect()
            return 0

    def _disconnect(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
