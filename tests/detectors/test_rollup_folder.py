"""The detector worker's background rollup folder: folds what is pending on a connection
of its own, one fold at a time, and survives a database it cannot reach."""

from __future__ import annotations

import time

import psycopg
import pytest

from common.settings import BaseProcessSettings
from detectors.rollup_folder import RollupFolder
from tests.common.test_rollup_pending import count, write_deferred
from tests.common.test_rollups_partitions import assert_rollups_match_raw, batch
from tests.fixtures.services import Isolation, database

pytestmark = pytest.mark.integration

NS = 1_000_000_000


def test_kick_folds_pending_rows_beside_the_caller(
    db: psycopg.Connection, stack: BaseProcessSettings, isolation: Isolation
) -> None:
    start = (time.time_ns() // (3600 * NS) - 2) * 3600 * NS
    ts, values, codes = batch(start, 3000, seed=5)
    with db.transaction():
        write_deferred(db, ts, values, codes)
    assert count(db, "rollup_pending") > 0
    folder = RollupFolder(database(stack, isolation).conninfo())
    try:
        assert folder.kick()
        folder.wait(30)
        assert count(db, "rollup_pending") == 0
        assert_rollups_match_raw(db)
    finally:
        folder.close()


def test_a_second_kick_while_folding_starts_nothing(
    db: psycopg.Connection, stack: BaseProcessSettings, isolation: Isolation
) -> None:
    folder = RollupFolder(database(stack, isolation).conninfo())
    try:
        # The fold waits for this lock, so it is still in flight at the second kick.
        with db.transaction():
            db.execute("LOCK TABLE rollup_pending IN ACCESS EXCLUSIVE MODE")
            assert folder.kick()
            time.sleep(0.3)
            assert not folder.kick(), "a fold was started while one was still waiting"
        folder.wait(30)
        assert folder.kick()
        folder.wait(30)
    finally:
        folder.close()


def test_an_unreachable_database_is_logged_and_retried_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = RollupFolder("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2")
    try:
        assert folder.kick()
        folder.wait(30)
        assert folder.kick()  # the failed one is done: the next kick starts another
        folder.wait(30)
    finally:
        folder.close()
    assert "folding rollups failed" in caplog.text
