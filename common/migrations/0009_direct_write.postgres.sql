-- The direct write path (common/store.write_readings, since 0009): the client sorts a
-- batch by (sensor, time), COPYs it straight into readings under a savepoint (the
-- primary key rejects the COPY when any row is already stored or twice in the batch;
-- then the staged path of 0007 runs), and aggregates the batch into per-minute and
-- per-hour rows itself (common/rollups.py). Those rows are COPYed into the session's
-- temp table rollups_stage and folded into readings_1m / readings_1h here.

-- Whether the writer maintains the rollup tables (false on TimescaleDB, where the
-- continuous aggregates do).
CREATE OR REPLACE FUNCTION rollups_by_writer() RETURNS boolean
LANGUAGE sql IMMUTABLE AS 'SELECT true';

-- Fold the staged per-bucket aggregates into the rollup tables; rows with hourly =
-- false go to readings_1m, the others to readings_1h. Same merge rules as
-- ingest_staged_readings() (0004). Empties the stage (the caller's transaction may
-- write another batch). (PL/pgSQL: the temp table exists only at run time.)
CREATE OR REPLACE FUNCTION fold_staged_rollups() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO readings_1m AS r (bucket, sensor_id, unit_id, samples, value_sum,
                                  value_min, value_max, value_last, last_time)
    SELECT bucket, sensor_id, unit_id, samples, value_sum, value_min, value_max,
           value_last, last_time
      FROM rollups_stage WHERE NOT hourly
    ON CONFLICT (sensor_id, bucket) DO UPDATE SET
        samples = r.samples + EXCLUDED.samples,
        value_sum = COALESCE(r.value_sum + EXCLUDED.value_sum, r.value_sum, EXCLUDED.value_sum),
        value_min = LEAST(r.value_min, EXCLUDED.value_min),
        value_max = GREATEST(r.value_max, EXCLUDED.value_max),
        value_last = CASE WHEN EXCLUDED.last_time >= r.last_time
                          THEN EXCLUDED.value_last ELSE r.value_last END,
        last_time = GREATEST(r.last_time, EXCLUDED.last_time);
    INSERT INTO readings_1h AS r (bucket, sensor_id, unit_id, samples, value_sum,
                                  value_min, value_max, value_last, last_time)
    SELECT bucket, sensor_id, unit_id, samples, value_sum, value_min, value_max,
           value_last, last_time
      FROM rollups_stage WHERE hourly
    ON CONFLICT (sensor_id, bucket) DO UPDATE SET
        samples = r.samples + EXCLUDED.samples,
        value_sum = COALESCE(r.value_sum + EXCLUDED.value_sum, r.value_sum, EXCLUDED.value_sum),
        value_min = LEAST(r.value_min, EXCLUDED.value_min),
        value_max = GREATEST(r.value_max, EXCLUDED.value_max),
        value_last = CASE WHEN EXCLUDED.last_time >= r.last_time
                          THEN EXCLUDED.value_last ELSE r.value_last END,
        last_time = GREATEST(r.last_time, EXCLUDED.last_time);
    DELETE FROM rollups_stage;
END
$fn$;

-- Which of a batch's rollup buckets exist already: per level (hourly false: 1 minute,
-- true: 1 hour), the sensors' positions in ``ids`` (0-based) and the buckets' epoch
-- seconds. Only the batch's sensors and bucket range are probed (primary key index).
-- The writer COPYs the other buckets straight in (COPY's multi-row insert) and upserts
-- only these.
CREATE OR REPLACE FUNCTION stored_rollup_buckets(
    ids text[], lo_m timestamptz, hi_m timestamptz, lo_h timestamptz, hi_h timestamptz
) RETURNS TABLE (hourly boolean, codes integer[], buckets bigint[])
LANGUAGE sql STABLE AS $fn$
    SELECT false, array_agg(i.ord::integer - 1), array_agg(extract(epoch FROM r.bucket)::bigint)
      FROM unnest(ids) WITH ORDINALITY AS i(id, ord)
      JOIN readings_1m r ON r.sensor_id = i.id AND r.bucket BETWEEN lo_m AND hi_m
    UNION ALL
    SELECT true, array_agg(i.ord::integer - 1), array_agg(extract(epoch FROM r.bucket)::bigint)
      FROM unnest(ids) WITH ORDINALITY AS i(id, ord)
      JOIN readings_1h r ON r.sensor_id = i.id AND r.bucket BETWEEN lo_h AND hi_h
$fn$;
