-- Deferred rollups (plain PostgreSQL). A detector worker's batch transaction is on the
-- alarm path: every millisecond it holds a reading back delays the alarms of the next
-- batch. Upserting the batch's buckets into readings_1m / readings_1h was most of that
-- transaction at small batches. With deferral (common/store.write_readings,
-- defer_rollups=True) the writer appends the batch's per-bucket aggregates to
-- rollup_pending in the same transaction (a COPY into a table without indexes, durable
-- with the readings), and folds the pending rows into the rollup tables in a
-- transaction of its own after the batch's alarms are out: fold_pending_rollups().
-- A pending row is deleted in the transaction that folds it, so each is folded exactly
-- once, whoever folds it and whenever a writer crashed. Until then the rollups lag the
-- raw readings (by one worker cycle when writers fold after every batch); TimescaleDB's
-- materialized aggregates lag by their refresh policy in the same way.

CREATE TABLE IF NOT EXISTS rollup_pending (
    hourly      boolean          NOT NULL,   -- false: readings_1m, true: readings_1h
    bucket      timestamptz      NOT NULL,
    sensor_id   text             NOT NULL,
    unit_id     text             NOT NULL,
    samples     bigint           NOT NULL,
    value_sum   double precision,
    value_min   double precision,
    value_max   double precision,
    value_last  double precision,
    last_time   timestamptz      NOT NULL
);

-- Fold every pending row visible now into the rollup tables and delete it; returns the
-- rows folded, or -1 when another session is folding (its rows and ours are folded by
-- it or by the next call; one folder at a time also keeps two folds from upserting the
-- same buckets in different orders, a deadlock). The partials of each (level, sensor,
-- bucket) are merged here and handed to fold_staged_rollups() (0009), the merge the
-- writer's own batches go through, via the session's rollups_stage.
CREATE OR REPLACE FUNCTION fold_pending_rollups() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('chemwatch.rollup_pending'),
                                     hashtext(current_schema())) THEN
        RETURN -1;
    END IF;
    -- the writer creates the same table (common/store.py) when it folds in-transaction
    CREATE TEMP TABLE IF NOT EXISTS rollups_stage (LIKE rollup_pending) ON COMMIT DELETE ROWS;
    WITH gone AS (
        DELETE FROM rollup_pending RETURNING *
    ), staged AS (
        INSERT INTO rollups_stage (hourly, bucket, sensor_id, unit_id, samples, value_sum,
                                   value_min, value_max, value_last, last_time)
        SELECT hourly, bucket, sensor_id, min(unit_id), sum(samples), sum(value_sum),
               min(value_min), max(value_max),
               -- the value of the partial with the latest reading (times are unique per sensor)
               (max(ARRAY[extract(epoch FROM last_time)::float8, value_last]))[2],
               max(last_time)
          FROM gone GROUP BY hourly, bucket, sensor_id
    )
    SELECT count(*) INTO folded FROM gone;
    PERFORM fold_staged_rollups();  -- also empties the stage
    RETURN folded;
END
$fn$;
