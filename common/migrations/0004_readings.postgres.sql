-- Readings on plain PostgreSQL: native range partitions by time (one per UTC day),
-- BRIN on time, and rollup tables readings_1m / readings_1h (one partition per UTC
-- month) maintained incrementally by ingest_staged_readings(), the write path.
-- Names and columns match the TimescaleDB variant (hypertable + continuous aggregates).

-- A schema migrated before partitioning has a plain readings table: keep its rows.
-- (Names are qualified: search_path also holds public, which may have its own.)
DO $$
DECLARE old regclass := to_regclass(format('%I.readings', current_schema()));
BEGIN
    IF old IS NOT NULL AND (SELECT relkind FROM pg_class WHERE oid = old) = 'r' THEN
        ALTER TABLE readings RENAME TO readings_unpartitioned;
        ALTER INDEX IF EXISTS readings_pkey RENAME TO readings_unpartitioned_pkey;
        ALTER INDEX IF EXISTS readings_time_idx RENAME TO readings_unpartitioned_time_idx;
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS readings (
    time         timestamptz      NOT NULL,
    sensor_id    text             NOT NULL,
    unit_id      text             NOT NULL,
    value        double precision,            -- NULL when the source sent no usable value
    quality      smallint         NOT NULL DEFAULT 0,  -- 0 good, 1 uncertain, 2 bad
    ingest_time  timestamptz      NOT NULL,
    PRIMARY KEY (sensor_id, time)             -- replays are ignored, never duplicated
) PARTITION BY RANGE (time);
-- Rows outside the partitioned window (older than raw_keep, beyond `ahead`) land here;
-- storage_maintain() deletes the old ones, create_time_partition() moves the rest.
CREATE TABLE IF NOT EXISTS readings_default PARTITION OF readings DEFAULT;
CREATE INDEX IF NOT EXISTS readings_time_brin ON readings USING brin (time)
    WITH (pages_per_range = 32);

-- Rollups: min, max, sum/count (avg), last value per sensor and bucket.
CREATE TABLE IF NOT EXISTS readings_1m (
    bucket      timestamptz      NOT NULL,
    sensor_id   text             NOT NULL,
    unit_id     text             NOT NULL,
    samples     bigint           NOT NULL,    -- readings with a value (NULLs not counted)
    value_sum   double precision,
    value_min   double precision,
    value_max   double precision,
    value_avg   double precision GENERATED ALWAYS AS (value_sum / NULLIF(samples, 0)) STORED,
    value_last  double precision,             -- value of the latest reading (may be NULL)
    last_time   timestamptz      NOT NULL,    -- time of the latest reading
    PRIMARY KEY (sensor_id, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE IF NOT EXISTS readings_1m_default PARTITION OF readings_1m DEFAULT;
CREATE INDEX IF NOT EXISTS readings_1m_bucket_brin ON readings_1m USING brin (bucket);

CREATE TABLE IF NOT EXISTS readings_1h (LIKE readings_1m INCLUDING ALL)
    PARTITION BY RANGE (bucket);
CREATE TABLE IF NOT EXISTS readings_1h_default PARTITION OF readings_1h DEFAULT;

-- Create parent_p<suffix> FOR VALUES FROM (lo) TO (hi) unless it exists. Rows of that
-- range already in the default partition are moved into it (PostgreSQL refuses the
-- new partition otherwise). Concurrent callers are serialised by an advisory lock.
CREATE OR REPLACE FUNCTION create_time_partition(
    parent text, key_column text, lo timestamptz, hi timestamptz, suffix text
) RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    nsp  text := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = parent::regclass);
    part text := parent || '_p' || suffix;
    cols text;
    moved bigint;
BEGIN
    IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
        RETURN false;  -- the common case: no lock taken
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('chemwatch.partitions'), hashtext(nsp));
    IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute
     WHERE attrelid = parent::regclass AND attnum > 0 AND NOT attisdropped
       AND attgenerated = '';
    EXECUTE format('CREATE TEMP TABLE IF NOT EXISTS _partition_move (LIKE %I.%I) ON COMMIT DROP',
                   nsp, parent);
    EXECUTE 'TRUNCATE _partition_move';
    EXECUTE format(
        'WITH d AS (DELETE FROM %1$I.%2$I WHERE %3$I >= $1 AND %3$I < $2 RETURNING %4$s)'
        ' INSERT INTO _partition_move (%4$s) SELECT %4$s FROM d',
        nsp, parent || '_default', key_column, cols) USING lo, hi;
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                   nsp, part, nsp, parent, lo, hi);
    IF moved > 0 THEN
        EXECUTE format('INSERT INTO %I.%I (%s) SELECT %s FROM _partition_move',
                       nsp, parent, cols, cols);
    END IF;
    DROP TABLE _partition_move;  -- the next parent may have other columns
    RETURN true;
END
$fn$;

-- Day partitions of readings and month partitions of the rollups covering [lo, hi],
-- clipped to the retention window and `ahead` of storage_policy. Returns how many
-- partitions were created. Called by the write path (for the batch's time range),
-- by storage_maintain() and so at every migrate (service start).
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
        IF create_time_partition('readings', 'time', d, d + interval '1 day',
                                 to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD')) THEN
            created := created + 1;
        END IF;
        d := d + interval '1 day';
    END LOOP;
    d := date_trunc('month', greatest(lo, now() - pol.rollup_keep) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE d <= least(hi, now() + pol.ahead) LOOP
        IF create_time_partition('readings_1m', 'bucket', d, d + interval '1 month',
                                 to_char(d AT TIME ZONE 'UTC', 'YYYYMM')) THEN
            created := created + 1;
        END IF;
        IF create_time_partition('readings_1h', 'bucket', d, d + interval '1 month',
                                 to_char(d AT TIME ZONE 'UTC', 'YYYYMM')) THEN
            created := created + 1;
        END IF;
        d := d + interval '1 month';
    END LOOP;
    RETURN created;
END
$fn$;

-- Move the rows of a pre-partitioning readings table over (once).
DO $$
DECLARE lo timestamptz; hi timestamptz;
BEGIN
    IF to_regclass(format('%I.readings_unpartitioned', current_schema())) IS NOT NULL THEN
        SELECT min(time), max(time) INTO lo, hi FROM readings_unpartitioned;
        IF lo IS NOT NULL THEN
            PERFORM ensure_time_partitions(lo, hi);
            INSERT INTO readings SELECT * FROM readings_unpartitioned ON CONFLICT DO NOTHING;
        END IF;
        DROP TABLE readings_unpartitioned;
    END IF;
END
$$;

-- The write path: move the session's staged batch (temp table readings_stage, filled
-- by binary COPY) into readings, ignoring rows already stored (replays), and fold
-- ONLY the rows actually inserted into readings_1m and readings_1h, all in the
-- caller's transaction. Returns the number of readings inserted.
CREATE OR REPLACE FUNCTION ingest_staged_readings() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    lo timestamptz;
    hi timestamptz;
    inserted bigint;
BEGIN
    SELECT min(time), max(time) INTO lo, hi FROM readings_stage;
    IF lo IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM ensure_time_partitions(lo, hi);
    WITH ins AS (
        INSERT INTO readings SELECT * FROM readings_stage
        ON CONFLICT DO NOTHING
        RETURNING time, sensor_id, unit_id, value
    ), minute AS (
        SELECT time_bucket(interval '1 minute', time) AS bucket, sensor_id,
               min(unit_id) AS unit_id, count(value) AS samples, sum(value) AS value_sum,
               min(value) AS value_min, max(value) AS value_max,
               -- [epoch, value] of the latest reading; times are unique per sensor
               max(ARRAY[extract(epoch FROM time)::float8, value]) AS last_pair,
               max(time) AS last_time
          FROM ins GROUP BY 1, 2
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
    ), h AS (
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
            last_time = GREATEST(r.last_time, EXCLUDED.last_time)
    )
    SELECT count(*) INTO inserted FROM ins;
    RETURN inserted;
END
$fn$;
