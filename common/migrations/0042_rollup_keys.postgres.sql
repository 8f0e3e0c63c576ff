-- Rollup tables keyed by the integer sensor key (plain PostgreSQL), as 0040 did for the
-- raw readings. readings_1m / readings_1h kept a text primary key (sensor_id, bucket)
-- and two text columns; after 0040 they were the write path's next limit (a third of
-- its time at 100k batches, 104 WAL bytes per reading against 57 for the raw row).
-- So (docs/storage.md, "Integer rollup keys"):
--   readings_1m_raw / readings_1h_raw  (bucket, sensor_key, samples, value_sum,
--                 value_min, value_max, value_last, last_time), PK (sensor_key, bucket),
--                 partitioned by month, BRIN on bucket; no text, value_avg not stored
--   readings_1m / readings_1h  views joining sensor_keys with exactly the old columns
--                 (bucket, sensor_id, unit_id, samples, value_sum, value_min, value_max,
--                 value_avg, value_last, last_time): every reader keeps working.
--   rollup_pending and the session stage rollups_key_stage carry sensor_key too.
-- unit_id is the sensor's unit now (sensor_keys), as for the readings view: a moved
-- sensor's older buckets show its new unit. Existing rows are converted, every value kept.

-- 1. The text-keyed tables step aside (converted in step 5).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['readings_1m', 'readings_1h', 'rollup_pending'] LOOP
        IF (SELECT relkind FROM pg_class
             WHERE oid = to_regclass(format('%I.%I', current_schema(), t))) IN ('r', 'p') THEN
            EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_text');
        END IF;
    END LOOP;
END
$$;

-- 2. The tables. Column order packs a row into 56 data bytes (bucket 8, key 4, samples 4,
-- five 8-byte fields); samples fits int4 (a bucket of an hour at 1 kHz is 3.6M).
CREATE TABLE IF NOT EXISTS readings_1m_raw (
    bucket      timestamptz      NOT NULL,
    sensor_key  integer          NOT NULL,    -- sensor_keys.sensor_key (no FK: COPY speed)
    samples     integer          NOT NULL,    -- readings with a value (NULLs not counted)
    value_sum   double precision,
    value_min   double precision,
    value_max   double precision,
    value_last  double precision,             -- value of the latest reading (may be NULL)
    last_time   timestamptz      NOT NULL,    -- time of the latest reading
    PRIMARY KEY (sensor_key, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE IF NOT EXISTS readings_1m_raw_default PARTITION OF readings_1m_raw DEFAULT;
CREATE INDEX IF NOT EXISTS readings_1m_raw_bucket_brin ON readings_1m_raw USING brin (bucket);

CREATE TABLE IF NOT EXISTS readings_1h_raw (
    bucket      timestamptz      NOT NULL,
    sensor_key  integer          NOT NULL,
    samples     integer          NOT NULL,
    value_sum   double precision,
    value_min   double precision,
    value_max   double precision,
    value_last  double precision,
    last_time   timestamptz      NOT NULL,
    PRIMARY KEY (sensor_key, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE IF NOT EXISTS readings_1h_raw_default PARTITION OF readings_1h_raw DEFAULT;
CREATE INDEX IF NOT EXISTS readings_1h_raw_bucket_brin ON readings_1h_raw USING brin (bucket);

-- Deferred rollups (0041), keyed. Also the layout of the session's stage
-- rollups_key_stage (common/store.py, fold_pending_rollups(), ingest_raw_stage()).
CREATE TABLE IF NOT EXISTS rollup_pending (
    bucket      timestamptz      NOT NULL,
    sensor_key  integer          NOT NULL,
    samples     integer          NOT NULL,
    value_sum   double precision,
    value_min   double precision,
    value_max   double precision,
    value_last  double precision,
    last_time   timestamptz      NOT NULL,
    hourly      boolean          NOT NULL     -- false: readings_1m, true: readings_1h
);

-- 3. Partitions and retention name the keyed tables.
CREATE OR REPLACE FUNCTION ensure_rollup_partitions(lo timestamptz, hi timestamptz)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    pol storage_policy;
    d timestamptz;
    created integer := 0;
BEGIN
    SELECT * INTO pol FROM storage_policy;
    d := date_trunc('month', greatest(lo, now() - pol.rollup_keep) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE d <= least(hi, now() + pol.ahead) LOOP
        IF create_time_partition('readings_1m_raw', 'bucket', d, d + interval '1 month',
                                 to_char(d AT TIME ZONE 'UTC', 'YYYYMM')) THEN
            created := created + 1;
        END IF;
        IF create_time_partition('readings_1h_raw', 'bucket', d, d + interval '1 month',
                                 to_char(d AT TIME ZONE 'UTC', 'YYYYMM')) THEN
            created := created + 1;
        END IF;
        d := d + interval '1 month';
    END LOOP;
    RETURN created;
END
$fn$;

CREATE OR REPLACE FUNCTION ensure_time_partitions(lo timestamptz, hi timestamptz)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    pol storage_policy;
    d timestamptz;
    created integer := 0;
BEGIN
    SELECT * INTO pol FROM storage_policy;
    d := date_trunc('day', greatest(lo, now() - pol.raw_keep) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE d <= least(hi, now() + pol.ahead) LOOP
        IF create_time_partition('readings_raw', 'time', d, d + interval '1 day',
                                 to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD')) THEN
            created := created + 1;
        END IF;
        d := d + interval '1 day';
    END LOOP;
    RETURN created + ensure_rollup_partitions(lo, hi);
END
$fn$;

CREATE OR REPLACE FUNCTION storage_maintain() RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
    pol storage_policy;
    part record;
    keep interval;
    n bigint;
BEGIN
    SELECT * INTO pol FROM storage_policy;
    FOR part IN
        SELECT c.relname, p.relname AS parent,
               CASE WHEN c.relname ~ '_p\d{8}$'
                    THEN (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp
                    ELSE (to_date(right(c.relname, 6), 'YYYYMM')::timestamp + interval '1 month')
               END AT TIME ZONE 'UTC' AS upper_bound
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
         WHERE i.inhparent IN (to_regclass('readings_raw'), to_regclass('readings_1m_raw'),
                               to_regclass('readings_1h_raw'))
           AND c.relname ~ '_p(\d{6}|\d{8})$'
         ORDER BY 1
    LOOP
        keep := CASE WHEN part.parent = 'readings_raw' THEN pol.raw_keep ELSE pol.rollup_keep END;
        IF part.upper_bound <= now() - keep THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            RETURN NEXT 'dropped ' || part.relname;
        END IF;
    END LOOP;
    DELETE FROM readings_raw_default WHERE time < now() - pol.raw_keep;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN RETURN NEXT format('deleted %s rows from readings_raw_default', n); END IF;
    DELETE FROM readings_1m_raw_default WHERE bucket < now() - pol.rollup_keep;
    DELETE FROM readings_1h_raw_default WHERE bucket < now() - pol.rollup_keep;
    n := ensure_time_partitions(now() - interval '1 day', now() + pol.ahead);
    IF n > 0 THEN RETURN NEXT format('created %s partitions', n); END IF;
END
$fn$;

-- 4. The rollup writers, keyed. Same merge rules as before (0004, 0009).

-- Fold the session's staged per-bucket aggregates (temp table rollups_key_stage, LIKE
-- rollup_pending; made by the caller) into the rollup tables, in key order (two
-- writers upserting shared buckets lock them in the same order), and empty the stage.
CREATE OR REPLACE FUNCTION fold_staged_rollups() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO readings_1m_raw AS r (bucket, sensor_key, samples, value_sum, value_min,
                                      value_max, value_last, last_time)
    SELECT bucket, sensor_key, samples, value_sum, value_min, value_max, value_last, last_time
      FROM rollups_key_stage WHERE NOT hourly ORDER BY sensor_key, bucket
    ON CONFLICT (sensor_key, bucket) DO UPDATE SET
        samples = r.samples + EXCLUDED.samples,
        value_sum = COALESCE(r.value_sum + EXCLUDED.value_sum, r.value_sum, EXCLUDED.value_sum),
        value_min = LEAST(r.value_min, EXCLUDED.value_min),
        value_max = GREATEST(r.value_max, EXCLUDED.value_max),
        value_last = CASE WHEN EXCLUDED.last_time >= r.last_time
                          THEN EXCLUDED.value_last ELSE r.value_last END,
        last_time = GREATEST(r.last_time, EXCLUDED.last_time);
    INSERT INTO readings_1h_raw AS r (bucket, sensor_key, samples, value_sum, value_min,
                                      value_max, value_last, last_time)
    SELECT bucket, sensor_key, samples, value_sum, value_min, value_max, value_last, last_time
      FROM rollups_key_stage WHERE hourly ORDER BY sensor_key, bucket
    ON CONFLICT (sensor_key, bucket) DO UPDATE SET
        samples = r.samples + EXCLUDED.samples,
        value_sum = COALESCE(r.value_sum + EXCLUDED.value_sum, r.value_sum, EXCLUDED.value_sum),
        value_min = LEAST(r.value_min, EXCLUDED.value_min),
        value_max = GREATEST(r.value_max, EXCLUDED.value_max),
        value_last = CASE WHEN EXCLUDED.last_time >= r.last_time
                          THEN EXCLUDED.value_last ELSE r.value_last END,
        last_time = GREATEST(r.last_time, EXCLUDED.last_time);
    DELETE FROM rollups_key_stage;
END
$fn$;

-- Which of a batch's rollup buckets exist already: per level, the sensors' positions in
-- ``keys`` (0-based) and the buckets' epoch seconds (primary key index, the batch's
-- sensors and bucket range only). Replaces stored_rollup_buckets(text[], ...) of 0009.
DROP FUNCTION IF EXISTS stored_rollup_buckets(text[], timestamptz, timestamptz, timestamptz,
                                              timestamptz);
CREATE OR REPLACE FUNCTION stored_rollup_key_buckets(
    keys integer[], lo_m timestamptz, hi_m timestamptz, lo_h timestamptz, hi_h timestamptz
) RETURNS TABLE (hourly boolean, codes integer[], buckets bigint[])
LANGUAGE sql STABLE AS $fn$
    SELECT false, array_agg(i.ord::integer - 1), array_agg(extract(epoch FROM r.bucket)::bigint)
      FROM unnest(keys) WITH ORDINALITY AS i(key, ord)
      JOIN readings_1m_raw r ON r.sensor_key = i.key AND r.bucket BETWEEN lo_m AND hi_m
    UNION ALL
    SELECT true, array_agg(i.ord::integer - 1), array_agg(extract(epoch FROM r.bucket)::bigint)
      FROM unnest(keys) WITH ORDINALITY AS i(key, ord)
      JOIN readings_1h_raw r ON r.sensor_key = i.key AND r.bucket BETWEEN lo_h AND hi_h
$fn$;

-- The exact path (0040): insert the staged raw rows not stored yet and fold ONLY those
-- into the rollups; now without a join to sensor_keys.
CREATE OR REPLACE FUNCTION ingest_raw_stage() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    lo timestamptz;
    hi timestamptz;
    inserted bigint;
BEGIN
    SELECT min(time), max(time) INTO lo, hi FROM raw_stage;
    IF lo IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM ensure_time_partitions(lo, hi);
    -- the session's rollup stage, as common/store.py creates it
    CREATE TEMP TABLE IF NOT EXISTS rollups_key_stage (LIKE rollup_pending)
        ON COMMIT DELETE ROWS;
    WITH ins AS (
        INSERT INTO readings_raw (time, sensor_key, quality, value, ingest_time)
        SELECT time, sensor_key, quality, value, ingest_time FROM raw_stage
        ON CONFLICT DO NOTHING
        RETURNING time, sensor_key, value
    ), minute AS (
        SELECT time_bucket(interval '1 minute', time) AS bucket, sensor_key,
               count(value) AS samples, sum(value) AS value_sum, min(value) AS value_min,
               max(value) AS value_max,
               -- [epoch, value] of the latest reading; times are unique per sensor
               max(ARRAY[extract(epoch FROM time)::float8, value]) AS last_pair,
               max(time) AS last_time
          FROM ins GROUP BY 1, 2
    ), staged AS (
        INSERT INTO rollups_key_stage (hourly, bucket, sensor_key, samples, value_sum,
                                       value_min, value_max, value_last, last_time)
        SELECT false, bucket, sensor_key, samples, value_sum, value_min, value_max,
               last_pair[2], last_time
          FROM minute
        UNION ALL
        SELECT true, time_bucket(interval '1 hour', bucket), sensor_key, sum(samples),
               sum(value_sum), min(value_min), max(value_max),
               (max(ARRAY[extract(epoch FROM last_time)::float8, last_pair[2]]))[2],
               max(last_time)
          FROM minute GROUP BY 2, 3
    )
    SELECT count(*) INTO inserted FROM ins;
    PERFORM fold_staged_rollups();  -- also empties the stage
    RETURN inserted;
END
$fn$;

-- Deferred rollups (0041), keyed: fold every pending row visible now and delete it;
-- -1 when another session is folding.
CREATE OR REPLACE FUNCTION fold_pending_rollups() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('chemwatch.rollup_pending'),
                                     hashtext(current_schema())) THEN
        RETURN -1;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS rollups_key_stage (LIKE rollup_pending)
        ON COMMIT DELETE ROWS;
    WITH gone AS (
        DELETE FROM rollup_pending RETURNING *
    ), staged AS (
        INSERT INTO rollups_key_stage (hourly, bucket, sensor_key, samples, value_sum,
                                       value_min, value_max, value_last, last_time)
        SELECT hourly, bucket, sensor_key, sum(samples), sum(value_sum),
               min(value_min), max(value_max),
               -- the value of the partial with the latest reading (times are unique per sensor)
               (max(ARRAY[extract(epoch FROM last_time)::float8, value_last]))[2],
               max(last_time)
          FROM gone GROUP BY hourly, bucket, sensor_key
    )
    SELECT count(*) INTO folded FROM gone;
    PERFORM fold_staged_rollups();  -- also empties the stage
    RETURN folded;
END
$fn$;

-- The pre-0009 helper (0007; still run by `chemwatch bench storage`'s
-- previous_write_path): fold every row of the text stage readings_stage, keyed.
CREATE OR REPLACE FUNCTION rollup_staged_readings() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS rollups_key_stage (LIKE rollup_pending)
        ON COMMIT DELETE ROWS;
    WITH minute AS (
        SELECT time_bucket(interval '1 minute', s.time) AS bucket, k.sensor_key,
               count(s.value) AS samples, sum(s.value) AS value_sum,
               min(s.value) AS value_min, max(s.value) AS value_max,
               max(ARRAY[extract(epoch FROM s.time)::float8, s.value]) AS last_pair,
               max(s.time) AS last_time
          FROM readings_stage s JOIN sensor_keys k USING (sensor_id)
         GROUP BY 1, 2
    )
    INSERT INTO rollups_key_stage (hourly, bucket, sensor_key, samples, value_sum, value_min,
                                   value_max, value_last, last_time)
    SELECT false, bucket, sensor_key, samples, value_sum, value_min, value_max,
           last_pair[2], last_time
      FROM minute
    UNION ALL
    SELECT true, time_bucket(interval '1 hour', bucket), sensor_key, sum(samples),
           sum(value_sum), min(value_min), max(value_max),
           (max(ARRAY[extract(epoch FROM last_time)::float8, last_pair[2]]))[2],
           max(last_time)
      FROM minute GROUP BY 2, 3;
    PERFORM fold_staged_rollups();
END
$fn$;

-- 5. Convert the rows of text-keyed rollup tables and pending rows (once). Sensors
-- known only from rollups (their raw rows past raw_keep) get a key, with the unit of
-- their newest bucket. Rows go in bucket order, as the write path stores them (BRIN).
DO $$
DECLARE lo timestamptz; hi timestamptz;
BEGIN
    IF to_regclass(format('%I.readings_1m_text', current_schema())) IS NOT NULL THEN
        INSERT INTO sensor_keys (sensor_id, unit_id)
        SELECT DISTINCT ON (sensor_id) sensor_id, unit_id
          FROM (SELECT sensor_id, unit_id, bucket FROM readings_1m_text
                UNION ALL
                SELECT sensor_id, unit_id, bucket FROM readings_1h_text) t
         ORDER BY sensor_id, bucket DESC
        ON CONFLICT (sensor_id) DO NOTHING;
        SELECT min(bucket), max(bucket) INTO lo, hi
          FROM (SELECT bucket FROM readings_1m_text UNION ALL
                SELECT bucket FROM readings_1h_text) t;
        IF lo IS NOT NULL THEN
            PERFORM ensure_rollup_partitions(lo, hi);
            INSERT INTO readings_1m_raw (bucket, sensor_key, samples, value_sum, value_min,
                                         value_max, value_last, last_time)
            SELECT r.bucket, k.sensor_key, r.samples, r.value_sum, r.value_min, r.value_max,
                   r.value_last, r.last_time
              FROM readings_1m_text r JOIN sensor_keys k USING (sensor_id)
             ORDER BY r.bucket, k.sensor_key;
            INSERT INTO readings_1h_raw (bucket, sensor_key, samples, value_sum, value_min,
                                         value_max, value_last, last_time)
            SELECT r.bucket, k.sensor_key, r.samples, r.value_sum, r.value_min, r.value_max,
                   r.value_last, r.last_time
              FROM readings_1h_text r JOIN sensor_keys k USING (sensor_id)
             ORDER BY r.bucket, k.sensor_key;
        END IF;
        DROP TABLE readings_1m_text, readings_1h_text;  -- with their partitions
    END IF;
    IF to_regclass(format('%I.rollup_pending_text', current_schema())) IS NOT NULL THEN
        INSERT INTO sensor_keys (sensor_id, unit_id)
        SELECT DISTINCT ON (sensor_id) sensor_id, unit_id
          FROM rollup_pending_text ORDER BY sensor_id, bucket DESC
        ON CONFLICT (sensor_id) DO NOTHING;
        INSERT INTO rollup_pending (hourly, bucket, sensor_key, samples, value_sum, value_min,
                                    value_max, value_last, last_time)
        SELECT p.hourly, p.bucket, k.sensor_key, p.samples, p.value_sum, p.value_min,
               p.value_max, p.value_last, p.last_time
          FROM rollup_pending_text p JOIN sensor_keys k USING (sensor_id);
        DROP TABLE rollup_pending_text;
    END IF;
END
$$;

-- 6. The query surface: same names and columns as before (and as TimescaleDB's
-- continuous aggregates).
CREATE OR REPLACE VIEW readings_1m AS
SELECT r.bucket, k.sensor_id, k.unit_id, r.samples::bigint AS samples, r.value_sum,
       r.value_min, r.value_max, r.value_sum / NULLIF(r.samples, 0) AS value_avg,
       r.value_last, r.last_time
  FROM readings_1m_raw r
  JOIN sensor_keys k ON k.sensor_key = r.sensor_key;

CREATE OR REPLACE VIEW readings_1h AS
SELECT r.bucket, k.sensor_id, k.unit_id, r.samples::bigint AS samples, r.value_sum,
       r.value_min, r.value_max, r.value_sum / NULLIF(r.samples, 0) AS value_avg,
       r.value_last, r.last_time
  FROM readings_1h_raw r
  JOIN sensor_keys k ON k.sensor_key = r.sensor_key;
