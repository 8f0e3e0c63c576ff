-- TimescaleDB when the extension is available; the same query surface otherwise.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable(
            'readings', 'time',
            chunk_time_interval => interval '1 day',
            if_not_exists => true, migrate_data => true);
    ELSIF NOT EXISTS (
        SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proname = 'time_bucket' AND n.nspname = current_schema()
    ) THEN
        -- TimescaleDB's time_bucket aligns buckets of a day or more to Monday
        -- 2000-01-03; date_bin with that origin gives the same buckets.
        EXECUTE $fn$
            CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
            RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
            'SELECT date_bin(bucket_width, ts, timestamptz ''2000-01-03 00:00:00+00'')'
        $fn$;
    END IF;
END
$$;
