"""Writes of the detector workers: readings, anomalies, offsets and state, in one transaction.

Readings (``write_readings``) are stored in ``readings_raw`` keyed by a small integer
per sensor (``sensor_keys``, migration 0040; ``readings`` is a view with the sensor and
unit names). The writer maps sensor ids to keys with a per-connection cache; sensors it
has not seen are added by ``sensor_keys_for()`` (INSERT ... ON CONFLICT DO NOTHING, then
SELECT: safe with concurrent writers). The batch is sorted by (key, time), the primary
key's order, so consecutive index insertions land on the same leaf pages. Its binary
COPY payload goes straight into ``readings_raw`` under a savepoint; if that succeeds,
every row was new, and the batch's per-minute and per-hour aggregates, computed here in
numpy (common/rollups.py) by sensor key, are COPYed into the keyed rollup tables
``readings_1m_raw`` / ``readings_1h_raw`` (new buckets) or a temp table folded by
``fold_staged_rollups()`` (stored ones; migrations 0009, 0042; plain PostgreSQL only,
TimescaleDB's continuous aggregates do that there). When the unique key rejects the
COPY (a replay, a key twice in the batch, a concurrent writer), the savepoint is rolled
back and the exact path runs: COPY into the temp table ``raw_stage``,
``raw_stage_remove_stored()`` drops the rows already stored, and ``ingest_raw_stage()``
inserts the rest with ``ON CONFLICT DO NOTHING`` and rolls up exactly the rows it
inserted. Either way a replay adds nothing and counts nothing, and everything happens
in the caller's transaction.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import orjson
import psycopg

from common import pgcopy, rollups
from common.conditions import ConditionEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RAW = "readings_raw"
_STAGE = "raw_stage"
_ROLLUP_STAGE = "rollups_key_stage"  # LIKE rollup_pending (migration 0042)
_WIDTHS = (rollups.MINUTE_NS, rollups.HOUR_NS)
_RAW_COLUMNS = "time, sensor_key, quality, value, ingest_time"
_UNKNOWN = np.iinfo(np.int64).min
_ROLLUP_COLUMNS = (
    "hourly, bucket, sensor_key, samples, value_sum, value_min, value_max, value_last, last_time"
)

# The database cannot do our work right now but may again later: the connection or the
# server went away, the disk is full (both OperationalError), or the server was switched
# to read-only. Long-running writers wait and retry on these; anything else is a bug.
UNAVAILABLE: tuple[type[psycopg.Error], ...] = (
    psycopg.OperationalError,
    psycopg.errors.ReadOnlySqlTransaction,
)


@dataclass
class _KeyCache:
    """A connection's writer state: the map (sensor_id, unit_id) -> sensor_key, and the
    newest rollup bucket written per sensor (``newest``, see _known_buckets()).

    ``known`` holds keys read in a transaction that did not make them, so committed
    (sensor_keys rows are never deleted). Keys this connection made or moved are
    ``pending`` until seen again from a later transaction: the transaction that made
    them may still roll back (a key cached then would point at no sensor). Pending keys
    are re-checked with every batch, in the batch's first query. The whole cache is
    dropped when ``sensor_keys`` is a different relation (file node: another schema,
    TRUNCATE, a re-created schema).
    """

    filenode: int = -1
    known: dict[tuple[str, str], int] = field(default_factory=dict)
    unit_of: dict[str, str] = field(default_factory=dict)
    pending: dict[tuple[str, str], int] = field(default_factory=dict)
    pending_xact: str = ""
    # Per rollup level (1 minute, 1 hour), indexed by sensor_key: the newest bucket this
    # connection has written (epoch ns), _UNKNOWN when none. See _known_buckets().
    newest: list[np.ndarray] = field(
        default_factory=lambda: [np.full(0, _UNKNOWN, np.int64) for _ in _WIDTHS]
    )

    def reset(self, filenode: int) -> None:
        """Forget everything: ``sensor_keys`` is another relation now."""
        self.filenode = filenode
        self.known.clear()
        self.unit_of.clear()
        self.pending.clear()
        self.pending_xact = ""
        self.newest = [np.full(0, _UNKNOWN, np.int64) for _ in _WIDTHS]

    def learn(self, pair: tuple[str, str], key: int) -> None:
        """Record a committed key (dropping the entry of the sensor's previous unit)."""
        self.forget_moved(pair)
        self.known[pair] = key
        self.unit_of[pair[0]] = pair[1]

    def forget_moved(self, pair: tuple[str, str]) -> None:
        """Drop the known entry of the sensor under another unit than ``pair``'s."""
        old = self.unit_of.get(pair[0])
        if old is not None and old != pair[1]:
            self.known.pop((pair[0], old), None)


_CACHES: weakref.WeakKeyDictionary[psycopg.Connection[Any], _KeyCache] = weakref.WeakKeyDictionary()


def forget_writer_state(conn: psycopg.Connection[Any]) -> None:
    """Drop what the writer remembers for this connection (sensor keys, newest rollup
    buckets). Needed only by tools that empty the tables under a live connection (the
    benchmarks): a stale memory is never wrong, but it would make the writer upsert
    rollup buckets it could COPY."""
    _CACHES.pop(conn, None)


def write_readings(
    conn: psycopg.Connection[Any],
    sensor_ids: list[str],
    sensor_code: np.ndarray,
    unit_ids: list[str],
    unit_code: np.ndarray,
    ts_ns: np.ndarray,
    ingest_ns: np.ndarray,
    value: np.ndarray,
    quality: np.ndarray,
    *,
    defer_rollups: bool = False,
    on_conflict: Literal["savepoint", "raise", "staged"] = "savepoint",
) -> int:
    """Insert readings (columns as arrays, text columns as codes); return rows inserted.

    A sensor's unit is ``unit_ids[unit_code]`` of its rows (one unit per sensor; a
    sensor reported with another unit than before is moved to it). With
    ``defer_rollups`` the batch's rollup aggregates are appended to ``rollup_pending``
    (durable with the readings) instead of being folded into the rollup tables here;
    the caller folds them later with ``fold_pending_rollups`` (migration 0041).

    Rows already stored (a replay) are skipped; ``on_conflict`` says how they are found:
    ``"savepoint"`` COPYs under a savepoint and falls back on the exact staged path;
    ``"raise"`` COPYs in the caller's transaction, so a replay raises UniqueViolation
    and aborts it, and the caller redoes the transaction with ``"staged"`` (two round
    trips fewer per batch, for a writer whose replays are rare); ``"staged"`` takes the
    exact path at once.
    """
    n = len(ts_ns)
    if n == 0:
        return 0
    sensor_code = np.asarray(sensor_code, np.int64)
    unit_code = np.asarray(unit_code, np.int64)
    ts_ns = np.asarray(ts_ns, np.int64)
    value = np.asarray(value, np.float64)
    ingest_ns = np.asarray(ingest_ns, np.int64)
    quality = np.asarray(quality, np.int16)
    cache = _CACHES.setdefault(conn, _KeyCache())
    with conn.cursor() as cur:
        by_writer, xact = _prepare(cur, cache, int(ts_ns.min()), int(ts_ns.max()))
        key_of_code = _sensor_keys(cur, cache, xact, sensor_ids, sensor_code, unit_ids, unit_code)
        key = key_of_code[sensor_code]
        if not rollups.is_key_sorted(key, ts_ns):
            order = np.lexsort((ts_ns, key))
            key = key[order]
            ts_ns, value, ingest_ns, quality = (
                ts_ns[order],
                value[order],
                ingest_ns[order],
                quality[order],
            )
        payload = raw_payload(ts_ns, key, quality, value, ingest_ns)
        if on_conflict == "staged" or not _copy_fresh(conn, cur, payload, on_conflict):
            return _write_staged(cur, payload, n)
        if by_writer and defer_rollups:
            _append_pending(cur, key, ts_ns, value)
        elif by_writer:
            fold_rollups(cur, key, ts_ns, value, state=cache)
        return n


def _copy_fresh(
    conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], payload: bytes, on_conflict: str
) -> bool:
    """COPY the rows straight into readings_raw; False if some were stored already."""
    if on_conflict == "raise":
        _copy(cur, _RAW, payload)  # a stored row raises UniqueViolation: the caller redoes
        return True
    try:
        with conn.transaction():  # a savepoint inside the caller's transaction
            _copy(cur, _RAW, payload)
    except psycopg.errors.UniqueViolation:
        return False  # some rows are stored already (replay, concurrent writer) or twice here
    return True


def fold_pending_rollups(conn: psycopg.Connection[Any]) -> int:
    """Fold the pending rollup rows of every writer into readings_1m / readings_1h, in
    a transaction of its own; return the rows folded, -1 if another session is folding.
    """
    with conn.transaction():
        row = conn.execute("SELECT fold_pending_rollups()").fetchone()
    return int(row[0]) if row else 0


def _append_pending(
    cur: psycopg.Cursor[Any], key: np.ndarray, ts_ns: np.ndarray, value: np.ndarray
) -> None:
    """Append a batch's per-minute and per-hour aggregates (rows sorted by key, time) to
    rollup_pending: one COPY into a table without indexes, in the caller's transaction."""
    levels = _levels(key, ts_ns, value)
    every = [np.ones(len(b.bucket_ns), bool) for b in levels]
    payload = _both_levels_payload(levels, every)
    with cur.copy(f"COPY rollup_pending ({_ROLLUP_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(payload)


def _levels(
    key: np.ndarray, ts_ns: np.ndarray, value: np.ndarray
) -> tuple[rollups.Buckets, rollups.Buckets]:
    """The batch's per-minute and per-hour buckets by sensor key (rows sorted by key,
    time). The rollup tables have no unit since 0042: it is the sensor's (sensor_keys)."""
    key = np.asarray(key, np.int64)
    return (
        rollups.fold(key, None, None, ts_ns, value, rollups.MINUTE_NS),
        rollups.fold(key, None, None, ts_ns, value, rollups.HOUR_NS),
    )


def _prepare(
    cur: psycopg.Cursor[Any], cache: _KeyCache, lo_ns: int, hi_ns: int
) -> tuple[bool, str]:
    """The batch's first round trip: partitions for [lo, hi], whether this flavour keeps
    the rollups by writer, and the state of the key cache (pending keys re-checked).
    Returns (rollups by writer, current transaction id)."""
    pending = list(cache.pending.items())
    row = cur.execute(
        "SELECT ensure_time_partitions(%s, %s), rollups_by_writer(),"
        " pg_relation_filenode('sensor_keys'), pg_current_xact_id()::text,"
        " (SELECT coalesce(array_agg(k.sensor_key), '{}') FROM sensor_keys k"
        "   JOIN unnest(%s::integer[], %s::text[], %s::text[]) AS p(key, id, unit)"
        "     ON k.sensor_key = p.key AND k.sensor_id = p.id AND k.unit_id = p.unit)",
        (
            _utc(lo_ns),
            _utc(hi_ns),
            [key for _p, key in pending],
            [p[0] for p, _k in pending],
            [p[1] for p, _k in pending],
        ),
    ).fetchone()
    assert row is not None
    xact = str(row[3])
    _check_cache(cache, int(row[2]), xact, set(row[4]))
    return bool(row[1]), xact


def raw_payload(
    ts_ns: np.ndarray,
    key: np.ndarray,
    quality: np.ndarray,
    value: np.ndarray,
    ingest_ns: np.ndarray,
) -> bytes:
    """The binary COPY payload of readings_raw rows (columns as in ``_RAW_COLUMNS``)."""
    return pgcopy.build(
        [
            pgcopy.timestamptz(ts_ns),
            pgcopy.Fixed(np.asarray(key, np.int32), ">i4"),
            pgcopy.Fixed(np.asarray(quality, np.int16), ">i2"),
            pgcopy.float8(value),
            pgcopy.timestamptz(ingest_ns),
        ],
        len(ts_ns),
    )


def _check_cache(cache: _KeyCache, filenode: int, xact: str, verified: set[int]) -> None:
    """Drop a stale cache; keep the pending keys still there, promote the committed ones."""
    if filenode != cache.filenode:
        cache.reset(filenode)
        return
    if not cache.pending:
        return
    later = xact != cache.pending_xact  # the transaction that made them has ended
    for pair, key in list(cache.pending.items()):
        if key not in verified:
            del cache.pending[pair]  # rolled back: ask again
        elif later:
            del cache.pending[pair]
            cache.learn(pair, key)


def _sensor_keys(
    cur: psycopg.Cursor[Any],
    cache: _KeyCache,
    xact: str,
    sensor_ids: list[str],
    sensor_code: np.ndarray,
    unit_ids: list[str],
    unit_code: np.ndarray,
) -> np.ndarray:
    """Each sensor code's key (int32; 0 for codes not in the batch); sensors not in the
    cache are looked up or added.

    One dictionary lookup per sensor in the batch (not per row); one round trip only
    when the batch names a sensor this connection has not seen.
    """
    seen = np.zeros(len(sensor_ids), bool)
    seen[sensor_code] = True
    present = np.flatnonzero(seen)
    unit_of_code = np.zeros(len(sensor_ids), np.int64)
    unit_of_code[sensor_code] = unit_code  # one unit per sensor (the last row's, if not)
    pairs = [
        (sensor_ids[c], unit_ids[u])
        for c, u in zip(present.tolist(), unit_of_code[present].tolist(), strict=True)
    ]
    known, pend = cache.known, cache.pending
    keys = [known.get(p, pend.get(p, -1)) for p in pairs]
    missing = [i for i, k in enumerate(keys) if k < 0]
    if missing:
        asked = [pairs[i] for i in missing]
        rows = cur.execute(
            "SELECT sensor_id, sensor_key FROM sensor_keys_for(%s::text[], %s::text[])",
            ([p[0] for p in asked], [p[1] for p in asked]),
        ).fetchall()
        found = {str(sid): int(k) for sid, k in rows}
        cache.pending_xact = xact  # pending ones of earlier transactions are settled
        for i, pair in zip(missing, asked, strict=True):
            keys[i] = found[pair[0]]
            cache.pending[pair] = keys[i]
            cache.forget_moved(pair)
    key_of_code = np.zeros(len(sensor_ids), np.int32)
    key_of_code[present] = keys
    return key_of_code


def _write_staged(cur: psycopg.Cursor[Any], payload: bytes, n: int) -> int:
    """The exact path: stage, drop what is stored, insert the rest ON CONFLICT DO NOTHING."""
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
        f"(LIKE {_RAW} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    _copy(cur, _STAGE, payload)
    row = cur.execute("SELECT raw_stage_remove_stored()").fetchone()
    inserted = 0
    if row is None or int(row[0]) < n:
        row = cur.execute("SELECT ingest_raw_stage()").fetchone()
        inserted = int(row[0]) if row else 0
    cur.execute(f"TRUNCATE {_STAGE}")
    return inserted


def fold_rollups(
    cur: psycopg.Cursor[Any],
    key: np.ndarray,
    ts_ns: np.ndarray,
    value: np.ndarray,
    *,
    copy_new: bool = True,
    state: _KeyCache | None = None,
) -> None:
    """Fold a batch just inserted, sorted by (sensor key, time; ``key`` per row), into
    the rollup tables (``readings_1m_raw`` / ``readings_1h_raw``, migration 0042).

    Plain PostgreSQL only (``rollups_by_writer()``); in the caller's transaction.
    Buckets the tables do not have yet are COPYed straight in (under a savepoint: if a
    concurrent writer made one meanwhile, every bucket is upserted instead); the others
    are merged by ``fold_staged_rollups()``. Which buckets exist comes from the writer's
    memory (``state``) when it knows every sensor of the batch, else from a probe of
    the tables. ``copy_new=False`` upserts every bucket (the simpler variant, kept for
    ``chemwatch bench storage``). Rollup rows carry keys only: no text is encoded.
    """
    levels = _levels(key, ts_ns, value)
    upsert = [np.ones(len(b.bucket_ns), bool) for b in levels]
    if copy_new:
        stored = None
        if state is not None:
            stored = _known_buckets(state, levels)
        if stored is None:
            stored = _stored_buckets(cur, levels)
        try:
            with cur.connection.transaction():
                for table, b, old in zip(
                    ("readings_1m_raw", "readings_1h_raw"), levels, stored, strict=True
                ):
                    if not old.all():
                        payload = _rollup_payload(b, ~old, None)
                        with cur.copy(
                            f"COPY {table} ({_ROLLUP_COLUMNS.split(', ', 1)[1]})"
                            " FROM STDIN (FORMAT BINARY)"
                        ) as copy:
                            copy.write(payload)
        except psycopg.errors.UniqueViolation:
            pass  # a concurrent writer made some of these buckets: upsert them all
        else:
            upsert = stored
    if state is not None:
        _remember_buckets(state, levels)
    if not any(u.any() for u in upsert):
        return
    payload = _both_levels_payload(levels, upsert)
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_ROLLUP_STAGE} (LIKE rollup_pending)"
        " ON COMMIT DELETE ROWS"
    )
    with cur.copy(f"COPY {_ROLLUP_STAGE} ({_ROLLUP_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(payload)
    cur.execute("SELECT fold_staged_rollups()")  # also empties the stage


def _known_buckets(
    state: _KeyCache, levels: tuple[rollups.Buckets, ...]
) -> list[np.ndarray] | None:
    """Per level, the buckets taken as stored: those not newer than the newest bucket
    this connection wrote for the sensor. None when a sensor has none (probe instead).

    Never wrong in a way that matters: a bucket taken as stored is upserted (INSERT ...
    ON CONFLICT DO UPDATE, right whether or not it exists: a rolled-back write, a gap,
    retention); a newer one is COPYed under a savepoint, and if another writer made it
    the unique key rejects the COPY and every bucket is upserted. So the probe's round
    trip (and its index scans) is saved for a writer that keeps to its sensors, as a
    detector worker does for its Kafka partitions.
    """
    masks = []
    for newest, b in zip(state.newest, levels, strict=True):
        k = b.sensor  # sensor keys
        if len(k) and int(k.max()) >= len(newest):
            return None
        last = newest[k]
        if (last == _UNKNOWN).any():
            return None
        masks.append(b.bucket_ns <= last)
    return masks


def _remember_buckets(state: _KeyCache, levels: tuple[rollups.Buckets, ...]) -> None:
    """Advance the newest written bucket per sensor and level (see _known_buckets)."""
    for i, b in enumerate(levels):
        k = b.sensor
        if not len(k):
            continue
        top = int(k.max()) + 1
        if top > len(state.newest[i]):
            grown = np.full(max(top, 2 * len(state.newest[i])), _UNKNOWN, np.int64)
            grown[: len(state.newest[i])] = state.newest[i]
            state.newest[i] = grown
        np.maximum.at(state.newest[i], k, b.bucket_ns)


def _stored_buckets(
    cur: psycopg.Cursor[Any], levels: tuple[rollups.Buckets, ...]
) -> list[np.ndarray]:
    """Per level (1 minute, 1 hour): which of the buckets the rollup table already has."""
    m, h = levels
    present = np.unique(m.sensor)  # the batch's sensor keys; both levels hold the same
    rows = cur.execute(
        "SELECT hourly, codes, buckets FROM stored_rollup_key_buckets(%s::integer[],"
        " %s, %s, %s, %s)",
        (
            present.tolist(),
            _utc(int(m.bucket_ns.min())),
            _utc(int(m.bucket_ns.max())),
            _utc(int(h.bucket_ns.min())),
            _utc(int(h.bucket_ns.max())),
        ),
    ).fetchall()
    found = {bool(hourly): (codes or [], buckets or []) for hourly, codes, buckets in rows}
    masks = []
    for hourly, b, width in zip((False, True), levels, _WIDTHS, strict=True):
        codes, seconds = found.get(hourly, ([], []))
        if not codes:
            masks.append(np.zeros(len(b.bucket_ns), bool))
            continue
        first = int(b.bucket_ns.min())
        span = (int(b.bucket_ns.max()) - first) // width + 1  # buckets
        position = np.searchsorted(present, b.sensor)
        cell = position * span + (b.bucket_ns - first) // width
        stored_ns = np.asarray(seconds, np.int64) * 1_000_000_000
        old = np.asarray(codes, np.int64) * span + (stored_ns - first) // width
        masks.append(np.isin(cell, old))
    return masks


def _both_levels_payload(levels: tuple[rollups.Buckets, ...], masks: list[np.ndarray]) -> bytes:
    """One COPY payload of the selected buckets of both levels, with the ``hourly``
    column (the layout of ``rollups_key_stage`` and ``rollup_pending``)."""
    body = [
        _rollup_payload(b, mask, hourly)[len(pgcopy.HEADER) : -len(pgcopy.TRAILER)]
        for hourly, b, mask in zip((False, True), levels, masks, strict=True)
    ]
    return b"".join([pgcopy.HEADER, *body, pgcopy.TRAILER])


def _rollup_payload(b: rollups.Buckets, rows: np.ndarray, hourly: bool | None) -> bytes:
    """COPY payload of the selected buckets (keys, no text); with an ``hourly`` column
    unless None (columns as in ``_ROLLUP_COLUMNS``)."""
    n = int(rows.sum())
    cols: list[pgcopy.Column] = (
        [] if hourly is None else [pgcopy.Fixed(np.full(n, hourly, np.uint8), ">u1")]
    )
    cols += [
        pgcopy.timestamptz(b.bucket_ns[rows]),
        pgcopy.Fixed(b.sensor[rows].astype(np.int32), ">i4"),
        pgcopy.Fixed(b.samples[rows].astype(np.int32), ">i4"),
        pgcopy.float8(b.value_sum[rows]),
        pgcopy.float8(b.value_min[rows]),
        pgcopy.float8(b.value_max[rows]),
        pgcopy.float8(b.value_last[rows]),
        pgcopy.timestamptz(b.last_ns[rows]),
    ]
    return pgcopy.build(cols, n)


def _utc(ns: int) -> datetime:
    """Epoch nanoseconds as an aware datetime (microseconds, as PostgreSQL keeps)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _copy(cur: psycopg.Cursor[Any], table: str, payload: bytes) -> None:
    with cur.copy(f"COPY {table} ({_RAW_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(payload)


def insert_anomalies(
    conn: psycopg.Connection[Any], events: Iterable[ConditionEvent], published: bool = False
) -> None:
    """Record condition transitions; unless ``published`` (Kafka has them already) they
    wait for publication (the outbox)."""
    rows = [
        (
            e.event_id,
            e.occurrence_id,
            e.ts,
            e.activated_at,
            e.state,
            e.site,
            e.unit,
            e.sensors[0],
            e.condition,
            e.severity,
            e.value,
            e.threshold,
            e.detector,
            e.explanation,
            e.to_json().decode(),
            published,
        )
        for e in events
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO anomalies (event_id, occurrence_id, time, activated_at, state,"
                " site_id, unit_id, sensor_id, condition, severity, value, threshold,"
                " detector, explanation, payload, published)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (event_id) DO NOTHING",
                rows,
            )


def unpublished_anomalies(
    conn: psycopg.Connection[Any], limit: int = 10_000
) -> list[ConditionEvent]:
    """Condition events written but not yet acknowledged by Kafka (oldest first)."""
    rows = conn.execute(
        "SELECT payload::text FROM anomalies WHERE NOT published ORDER BY time LIMIT %s",
        (limit,),
    ).fetchall()
    return [ConditionEvent.from_json(r[0].encode()) for r in rows]


def mark_published(conn: psycopg.Connection[Any], event_ids: list[str]) -> None:
    """Mark condition events as delivered to Kafka."""
    if event_ids:
        conn.execute(
            "UPDATE anomalies SET published = true WHERE event_id = ANY(%s::uuid[])",
            (event_ids,),
        )


def save_offsets(
    conn: psycopg.Connection[Any], group_id: str, offsets: Mapping[tuple[str, int], int]
) -> None:
    """Store the next offset to read per (topic, partition), in the caller's transaction."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (group_id, topic, partition)"
            " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
            [(group_id, t, p, o) for (t, p), o in offsets.items()],
        )


def load_offsets(conn: psycopg.Connection[Any], group_id: str, topic: str) -> dict[int, int]:
    """Stored next offsets per partition of one topic."""
    rows = conn.execute(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = %s AND topic = %s",
        (group_id, topic),
    ).fetchall()
    return {int(p): int(o) for p, o in rows}


def save_state(
    conn: psycopg.Connection[Any], detector: str, states: Mapping[str, Mapping[str, Any]]
) -> None:
    """Snapshot detector state per unit (JSON), in the caller's transaction."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO detector_state (unit_id, detector, state) VALUES (%s, %s, %s)"
            " ON CONFLICT (unit_id, detector)"
            " DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
            [(unit, detector, state_json(state)) for unit, state in states.items()],
        )


def state_json(state: Mapping[str, Any]) -> str:
    """A detector snapshot as JSON text: numpy arrays written directly (orjson), NaN as
    null. json.dumps of the same state as Python lists cost seconds per checkpoint for a
    100k-sensor worker; orjson writes the arrays about 20x faster."""
    return orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def load_state(conn: psycopg.Connection[Any], detector: str) -> dict[str, dict[str, Any]]:
    """Every unit's last snapshot of one detector."""
    rows = conn.execute(
        "SELECT unit_id, state FROM detector_state WHERE detector = %s", (detector,)
    ).fetchall()
    return dict(rows)


def read_unit_readings(
    conn: psycopg.Connection[Any], unit_id: str, start: Any, end: Any
) -> list[tuple[Any, str, float]]:
    """Usable readings (time, sensor, value) of one unit in [start, end), oldest first."""
    rows = conn.execute(
        "SELECT time, sensor_id, value FROM readings WHERE unit_id = %s AND time >= %s"
        " AND time < %s AND quality <> 2 AND value = value ORDER BY time",
        (unit_id, start, end),
    ).fetchall()
    return [(r[0], str(r[1]), float(r[2])) for r in rows]


def save_model(
    conn: psycopg.Connection[Any],
    unit_id: str,
    kind: str,
    model: Mapping[str, Any],
    train_from: Any,
    train_to: Any,
    n_rows: int,
) -> int:
    """Store a new version of a unit's model; return its version number."""
    row = conn.execute(
        "INSERT INTO detector_models (unit_id, kind, version, train_from, train_to, n_rows, model)"
        " SELECT %s, %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s FROM detector_models"
        " WHERE unit_id = %s AND kind = %s RETURNING version",
        (unit_id, kind, train_from, train_to, n_rows, json.dumps(model), unit_id, kind),
    ).fetchone()
    assert row is not None
    return int(row[0])


def load_models(conn: psycopg.Connection[Any], kind: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """The newest model version of every unit for one kind: unit -> (version, model)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (unit_id) unit_id, version, model FROM detector_models"
        " WHERE kind = %s ORDER BY unit_id, version DESC",
        (kind,),
    ).fetchall()
    return {str(u): (int(v), dict(m)) for u, v, m in rows}
