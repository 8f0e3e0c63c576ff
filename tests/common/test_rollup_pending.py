"""Deferred rollups (migration 0041): pending aggregates are durable with the readings
and folded into readings_1m / readings_1h exactly once."""

from __future__ import annotations

import time

import numpy as np
import psycopg
import pytest

from common import store
from common.settings import BaseProcessSettings
from tests.common.test_rollups_partitions import assert_rollups_match_raw, batch, write_in_txn
from tests.fixtures.services import Isolation, database

pytestmark = pytest.mark.integration

NS = 1_000_000_000


def write_deferred(
    db: psycopg.Connection, ts: np.ndarray, values: np.ndarray, codes: np.ndarray
) -> int:
    return write_in_txn(db, ts, values, codes, defer_rollups=True)


def count(db: psycopg.Connection, table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_deferred_rollups_wait_in_pending_until_folded_then_match_the_raw_rows(
    db: psycopg.Connection,
) -> None:
    start = (time.time_ns() // (3600 * NS) - 3) * 3600 * NS
    ts, values, codes = batch(start, 6000, seed=21)
    # Batches that share buckets (so partials of one bucket are merged), a replay and
    # late rows that must not move `last` backwards.
    for lo, hi in ((0, 1500), (1500, 4000), (4000, 6000)):
        with db.transaction():
            assert write_deferred(db, ts[lo:hi], values[lo:hi], codes[lo:hi]) == hi - lo
    with db.transaction():
        assert write_deferred(db, ts, values, codes) == 0  # a replay adds no pending rows
    late = ts[:8] - 3 * NS
    with db.transaction():
        assert write_deferred(db, late, np.full(8, 99.0), codes[:8]) == 8
    assert count(db, "readings_1m") == 0
    assert count(db, "readings_1h") == 0
    pending = count(db, "rollup_pending")
    assert pending > 0
    assert store.fold_pending_rollups(db) == pending
    assert count(db, "rollup_pending") == 0
    assert_rollups_match_raw(db)
    # A second fold finds nothing; folding more batches later merges into the buckets.
    assert store.fold_pending_rollups(db) == 0
    more_ts, more_values, more_codes = batch(int(ts.max()) + NS, 400, seed=22)
    with db.transaction():
        write_deferred(db, more_ts, more_values, more_codes)
    assert store.fold_pending_rollups(db) > 0
    assert_rollups_match_raw(db)


def test_a_rolled_back_batch_leaves_nothing_pending(db: psycopg.Connection) -> None:
    start = (time.time_ns() // (3600 * NS) - 1) * 3600 * NS
    ts, values, codes = batch(start, 400, seed=23)
    with db.transaction():
        write_deferred(db, ts, values, codes)
        assert count(db, "rollup_pending") > 0
        raise psycopg.Rollback()  # the worker's batch failed before commit
    assert count(db, "rollup_pending") == 0
    assert count(db, "readings") == 0


def test_while_one_session_folds_another_skips_and_nothing_is_folded_twice(
    stack: BaseProcessSettings, isolation: Isolation, db: psycopg.Connection
) -> None:
    start = (time.time_ns() // (3600 * NS) - 1) * 3600 * NS
    ts, values, codes = batch(start, 800, seed=24)
    with db.transaction():
        write_deferred(db, ts[:400], values[:400], codes[:400])
    with psycopg.connect(database(stack, isolation).conninfo(), autocommit=True) as other:
        with other.transaction():
            first = other.execute("SELECT fold_pending_rollups()").fetchone()
            assert first is not None
            assert first[0] > 0
            # the first fold has not committed: a second folder must not wait or fold
            assert store.fold_pending_rollups(db) == -1
            with db.transaction():
                write_deferred(db, ts[400:], values[400:], codes[400:])
        # the rows written meanwhile were not visible to that fold: still pending
        assert count(db, "rollup_pending") > 0
    assert store.fold_pending_rollups(db) > 0
    assert count(db, "rollup_pending") == 0
    assert_rollups_match_raw(db)
