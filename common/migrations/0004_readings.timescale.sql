-- Readings on TimescaleDB: a hypertable with one-day chunks, compressed per sensor
-- after 7 days, and continuous aggregates readings_1m / readings_1h (real-time, so
-- the newest buckets are as current as on the plain-PostgreSQL path). Names and
-- columns match the plain-PostgreSQL variant. Retention policies: storage_maintain().

CREATE TABLE IF NOT EXISTS readings (
    time         timestamptz      NOT NULL,
    sensor_id    text             NOT NULL,
    unit_id      text             NOT NULL,
    value        double precision,            -- NULL when the source sent no usable value
    quality      smallint         NOT NULL DEFAULT 0,  -- 0 good, 1 uncertain, 2 bad
    ingest_time  timestamptz      NOT NULL,
    PRIMARY KEY (sensor_id, time)             -- replays are ignored, never duplicated
);
SELECT create_hypertable('readings', by_range('time', interval '1 day'),
                         if_not_exists => true, migrate_data => true,
                         create_default_indexes => false);
CREATE INDEX IF NOT EXISTS readings_time_idx ON readings (time DESC);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'sensor_id',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy('readings', compress_after => interval '7 days',
                              if_not_exists => true);

-- Rollups: min, max, sum/count (avg), last value per sensor and bucket.
CREATE MATERIALIZED VIEW IF NOT EXISTS readings_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 minute', time) AS bucket,
       sensor_id,
       min(unit_id)              AS unit_id,
       count(value)              AS samples,
       sum(value)                AS value_sum,
       min(value)                AS value_min,
       max(value)                AS value_max,
       avg(value)                AS value_avg,
       last(value, time)         AS value_last,
       max(time)                 AS last_time
  FROM readings
 GROUP BY 1, 2
WITH NO DATA;

-- Hierarchical: built from readings_1m, not from the raw rows.
CREATE MATERIALIZED VIEW IF NOT EXISTS readings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket,
       sensor_id,
       min(unit_id)                                 AS unit_id,
       sum(samples)::bigint                         AS samples,
       sum(value_sum)                               AS value_sum,
       min(value_min)                               AS value_min,
       max(value_max)                               AS value_max,
       sum(value_sum) / NULLIF(sum(samples), 0)     AS value_avg,
       last(value_last, last_time)                  AS value_last,
       max(last_time)                               AS last_time
  FROM readings_1m
 GROUP BY 1, 2
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_1m',
    start_offset => interval '2 hours', end_offset => interval '1 minute',
    schedule_interval => interval '1 minute', if_not_exists => true);
SELECT add_continuous_aggregate_policy('readings_1h',
    start_offset => interval '3 days', end_offset => interval '1 hour',
    schedule_interval => interval '30 minutes', if_not_exists => true);

-- Chunks are created by TimescaleDB itself; kept so callers work on both paths.
CREATE OR REPLACE FUNCTION ensure_time_partitions(lo timestamptz, hi timestamptz)
RETURNS integer LANGUAGE sql AS 'SELECT 0';

-- The write path: move the session's staged batch (temp table readings_stage, filled
-- by binary COPY) into readings, ignoring rows already stored (replays). The
-- continuous aggregates do the rollups. Returns the number of readings inserted.
CREATE OR REPLACE FUNCTION ingest_staged_readings() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted bigint;
BEGIN
    INSERT INTO readings SELECT * FROM readings_stage ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$fn$;
