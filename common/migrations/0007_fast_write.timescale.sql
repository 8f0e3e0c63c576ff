-- The fast write path (common/store.write_readings): a batch is COPYed into the temp
-- table readings_stage; stage_remove_stored() removes the rows readings already has
-- (replays); when none were there, the client COPYs the batch straight into readings
-- (COPY's multi-row insert is several times faster than INSERT ... SELECT), under a
-- savepoint: if a concurrent writer got there first, the unique key rejects the COPY
-- and the exact ON CONFLICT path (ingest_staged_readings) runs instead. Rollups are
-- the continuous aggregates' job here; rollup_staged_readings() is a no-op so that the
-- client code is the same on both flavours.

-- Delete the staged rows that readings already holds; return how many. Also makes the
-- time partitions the batch needs.
CREATE OR REPLACE FUNCTION stage_remove_stored() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    lo timestamptz;
    hi timestamptz;
    ids text[];
    removed bigint;
BEGIN
    SELECT min(time), max(time), array_agg(DISTINCT sensor_id) INTO lo, hi, ids
      FROM readings_stage;
    IF lo IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM ensure_time_partitions(lo, hi);
    -- Only the batch's sensors and time window are probed (the primary key index),
    -- so the cost does not grow with what other writers store meanwhile.
    WITH stored AS MATERIALIZED (
        SELECT r.sensor_id, r.time FROM readings r
         WHERE r.sensor_id = ANY (ids) AND r.time BETWEEN lo AND hi
    )
    DELETE FROM readings_stage s USING stored
     WHERE s.sensor_id = stored.sensor_id AND s.time = stored.time;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$fn$;

CREATE OR REPLACE FUNCTION rollup_staged_readings() RETURNS void
LANGUAGE sql AS 'SELECT';
