-- The fast write path (common/store.write_readings): a batch is COPYed into the temp
-- table readings_stage; stage_remove_stored() removes the rows readings already has
-- (replays); when none were there, the client COPYs the batch straight into readings
-- (COPY's multi-row insert is several times faster than INSERT ... SELECT), under a
-- savepoint: if a concurrent writer got there first, the unique key rejects the COPY
-- and the exact ON CONFLICT path (ingest_staged_readings) runs instead. The rollups
-- of a directly copied batch come from the stage: rollup_staged_readings().

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

-- Fold every staged row (all of them just stored) into readings_1m and readings_1h.
-- (PL/pgSQL: a SQL-language body would be checked against a temp table not there yet.)
CREATE OR REPLACE FUNCTION rollup_staged_readings() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    WITH minute AS (
        SELECT time_bucket(interval '1 minute', time) AS bucket, sensor_id,
               min(unit_id) AS unit_id, count(value) AS samples, sum(value) AS value_sum,
               min(value) AS value_min, max(value) AS value_max,
               max(ARRAY[extract(epoch FROM time)::float8, value]) AS last_pair,
               max(time) AS last_time
          FROM readings_stage GROUP BY 1, 2
    ), m AS (
        INSERT INTO readings_1m AS r (bucket, sensor_id, unit_id, samples, value_sum,
                                      value_min, value_max, value_last, last_time)
        SELECT bucket, sensor_id, unit_id, samples, value_sum, value_min, value_max,
               last_pair[2], last_time
          FROM minute
        ON CONFLICT (sensor_id, bucket) DO UPDATE SET
            samples = r.samples + EXCLUDED.samples,
            value_sum = COALESCE(r.value_sum + EXCLUDED.value_sum, r.value_sum, EXCLUDED.value_sum),
            value_min = LEAST(r.value_min, EXCLUDED.value_min),
            value_max = GREATEST(r.value_max, EXCLUDED.value_max),
            value_last = CASE WHEN EXCLUDED.last_time >= r.last_time
                              THEN EXCLUDED.value_last ELSE r.value_last END,
            last_time = GREATEST(r.last_time, EXCLUDED.last_time)
    )
    INSERT INTO readings_1h AS r (bucket, sensor_id, unit_id, samples, value_sum,
                                  value_min, value_max, value_last, last_time)
    SELECT time_bucket(interval '1 hour', bucket), sensor_id, min(unit_id), sum(samples),
           sum(value_sum), min(value_min), max(value_max),
           (max(ARRAY[extract(epoch FROM last_time)::float8, last_pair[2]]))[2],
           max(last_time)
      FROM minute GROUP BY 1, 2
    ON CONFLICT (sensor_id, bucket) DO UPDATE SET
        samples = r.samples + EXCLUDED.samples,
        value_sum = COALESCE(r.value_sum + EXCLUDED.value_sum, r.value_sum, EXCLUDED.value_sum),
        value_min = LEAST(r.value_min, EXCLUDED.value_min),
        value_max = GREATEST(r.value_max, EXCLUDED.value_max),
        value_last = CASE WHEN EXCLUDED.last_time >= r.last_time
                          THEN EXCLUDED.value_last ELSE r.value_last END,
        last_time = GREATEST(r.last_time, EXCLUDED.last_time);
END
$fn$;
