-- TimescaleDB when the extension is available; otherwise the same query surface on
-- plain PostgreSQL. From here on, migrations with a `.timescale.sql` / `.postgres.sql`
-- variant are applied in the flavour chosen here (see common/migrate.py).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        -- Database-wide: schemas migrating side by side would race on it.
        PERFORM pg_advisory_xact_lock(hashtext('chemwatch.extension'));
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    ELSIF NOT EXISTS (
        SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proname = 'time_bucket' AND n.nspname = current_schema()
    ) THEN
        -- TimescaleDB's time_bucket aligns buckets of a day or more to Monday
        -- 2000-01-03; date_bin with that origin gives the same buckets (and the same
        -- as TimescaleDB for sub-day widths, which divide a day evenly).
        EXECUTE $fn$
            CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
            RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
            'SELECT date_bin(bucket_width, ts, timestamptz ''2000-01-03 00:00:00+00'')'
        $fn$;
        EXECUTE $fn$
            CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz, origin timestamptz)
            RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
            'SELECT date_bin(bucket_width, ts, origin)'
        $fn$;
    END IF;
END
$$;
