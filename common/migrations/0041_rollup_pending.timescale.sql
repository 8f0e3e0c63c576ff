-- Deferred rollups: on TimescaleDB the continuous aggregates keep readings_1m /
-- readings_1h and writers send no rollups (rollups_by_writer() is false), so nothing is
-- ever pending. The table and function exist so that both flavours have the same names
-- (see the plain-PostgreSQL variant of 0041 for the design).

CREATE TABLE IF NOT EXISTS rollup_pending (
    hourly      boolean          NOT NULL,
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

CREATE OR REPLACE FUNCTION fold_pending_rollups() RETURNS bigint
LANGUAGE sql AS 'SELECT 0::bigint';
